"""The provider kit: what every provider writes the same way, built-in or third-party.

- credentials: `request_key` picks the key a request carries upstream;
- JSON: `dumps` (compact UTF-8, orjson), `loads_or_none`, `json_object` and the coercions
  `as_int`, `as_dict`, `as_list`, `as_str`;
- requests: `require_operation` refuses what a backend cannot serve;
- errors: `backend_error` and `error_object` read a backend's error body, `parse_error` is the
  whole of a typical `Provider.parse_error`, `rejected_credentials` hides the gateway's key;
- data URLs: `parse_data_url`, one strict parser, so a request passes or fails the same way
  on every provider;
- streams: `StreamDecoderBase` (and `SSEStreamDecoder`) run the feed/close loop of a
  `StreamDecoder`: failures become one in-order `error_chunk`, nothing follows it, and a
  stream that ends before its end marker reports `upstream_stream_truncated`.

Pure: no I/O, no gateway state.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson

from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.errors import GatewayError, bad_request, credentials_rejected, upstream_error
from modelway.jsonx import dumps as dumps  # re-exported: the kit's JSON encoder
from modelway.sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    from modelway.config import BackendConfig
    from modelway.context import RequestContext

Chunk = dict[str, Any]
"""A canonical `chat.completion.chunk` dict, or an error chunk `{"error": {...}}`."""

E = TypeVar("E")

TRUNCATED = "upstream_stream_truncated"
"""The code of the error chunk a stream ends with when it stops before its end marker."""

# --------------------------------------------------------------------------- credentials


def request_key(ctx: RequestContext, backend: BackendConfig) -> str | None:
    """The key to send upstream: the client's own with `auth: passthrough`, else the
    backend's `api_key` secret; None when there is none."""
    if backend.auth == "passthrough":
        return ctx.client.api_key
    return backend.api_key.get_secret_value() if backend.api_key else None


# --------------------------------------------------------------------------- JSON


_LONG_DIGITS = re.compile(rb"\d{19}")
_LONG_DIGITS_TEXT = re.compile(r"\d{19}")


def loads_or_none(body: bytes | str) -> Any:
    """The JSON value in `body`, or None when it is not JSON.

    orjson (the hot path: every event of a translated stream), except where its value could
    differ from the standard library's: a body with a run of 19 digits or more (orjson turns
    integers beyond 64 bits into floats, which would change a tool call's arguments), and
    what orjson refuses (NaN, Infinity, a lone surrogate, very deep nesting), which the
    standard library reads as it always did."""
    if isinstance(body, bytes):
        long = _LONG_DIGITS.search(body) is not None
    else:
        long = _LONG_DIGITS_TEXT.search(body) is not None
    if not long:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def json_object(body: bytes | str, problem: str, code: str) -> dict[str, Any]:
    """The JSON object in `body`; otherwise a 502 GatewayError with `problem` and `code`."""
    value = loads_or_none(body)
    if not isinstance(value, dict):
        raise upstream_error(502, problem, code)
    return value


def answer_object(body: bytes | str) -> dict[str, Any]:
    """A non-streamed answer's JSON object, or a 502 `upstream_invalid_response`."""
    return json_object(
        body, "the backend's answer is not a JSON object", "upstream_invalid_response"
    )


def event_object(data: bytes | str) -> dict[str, Any]:
    """One stream event's JSON object, or `invalid_event()`."""
    value = loads_or_none(data)
    if not isinstance(value, dict):
        raise invalid_event()
    return value


def invalid_event() -> GatewayError:
    """A stream event that is not a JSON object: a 502 `upstream_invalid_stream`."""
    problem = "the backend's stream has an event that is not a JSON object"
    return upstream_error(502, problem, "upstream_invalid_stream")


def as_int(value: Any, default: int = 0) -> int:
    """`value` when it is a JSON integer (a bool is not), else `default`."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def as_dict(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else a new empty dict."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` when it is a JSON array, else a new empty list."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """`value` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- requests


def counted(body: bytes | str, field: str) -> CanonicalResponse:
    """A token count answer (`input_tokens` or `totalTokens` in `field`) in canonical
    shape: `{"input_tokens": n}`, which each ingress writes in its own API's shape."""
    return CanonicalResponse({"input_tokens": as_int(answer_object(body).get(field))})


def require_operation(
    request: CanonicalRequest,
    backend: BackendConfig,
    operations: frozenset[Operation] = frozenset({Operation.CHAT}),
) -> None:
    """Raise a 400 `unsupported_operation` when the backend cannot serve the request."""
    if request.operation not in operations:
        raise GatewayError(
            400,
            f"backend '{backend.provider}' cannot serve {request.operation}",
            code="unsupported_operation",
        )


# --------------------------------------------------------------------------- errors


def default_type(status: int) -> str:
    """The gateway's error type for a status with no type of its own."""
    return "server_error" if status >= 500 else "invalid_request_error"


def unexplained(status: int) -> GatewayError:
    """An error answer that says nothing the gateway can read."""
    return upstream_error(status, f"the backend answered HTTP {status}")


def error_object(data: Any) -> dict[str, Any] | None:
    """The `error` object of an error body `{"error": {...}}` (or a one-item list of it)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def backend_error(
    status: int, message: Any, kind: Any = None, code: Any = None, param: Any = None
) -> GatewayError:
    """A backend's error fields as a GatewayError: the status kept, and fields that are not
    non-empty strings replaced (the message and type by defaults, code and param by None)."""
    return GatewayError(
        status,
        as_str(message) or f"the backend answered HTTP {status}",
        as_str(kind) or default_type(status),
        as_str(code),
        as_str(param),
    )


def rejected_credentials(
    backend: BackendConfig,
    status: int,
    *,
    rejected: bool | None = None,
    what: str = "api_key",
    reason: str | None = None,
) -> GatewayError | None:
    """The 502 for a backend refusing the gateway's own credentials, or None.

    `rejected` says whether it did (default: the status is 401 or 403). With `auth:
    passthrough` the key was the client's, so its error is the client's to see: None.
    The 502 names neither the key nor the backend's message.
    """
    refused = status in (401, 403) if rejected is None else rejected
    if backend.auth != "gateway" or not refused:
        return None
    return credentials_rejected(status, what, reason)


def parse_error(
    backend: BackendConfig,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    read: Callable[[int, Any], GatewayError],
    *,
    auth_failure: Callable[[int, Any], bool] | None = None,
    what: str = "api_key",
) -> GatewayError:
    """A typical `Provider.parse_error`: `read(status, parsed body)` unless the backend
    rejected the gateway's credentials (`auth_failure(status, parsed body)`, by default a
    401 or 403). The backend's own `retry-after` header wins over one read from the body."""
    data = loads_or_none(body)
    refused = None if auth_failure is None else auth_failure(status, data)
    denied = rejected_credentials(backend, status, rejected=refused, what=what)
    if denied is not None:
        return denied
    error = read(status, data)
    if headers.get("retry-after"):
        error.headers.pop("retry-after", None)
    return error


def error_chunk(error: GatewayError) -> Chunk:
    """A stream failure as the in-order error chunk the stream pipeline reads (status kept)."""
    fields = {"message": error.message, "type": error.type, "code": error.code}
    return {"error": {**fields, "status": error.status}}


def is_error_chunk(chunk: Chunk) -> bool:
    """Whether a decoder's chunk reports a failure (as the stream pipeline reads it)."""
    return "error" in chunk and not chunk.get("choices")


def truncated_error() -> GatewayError:
    """The failure of a stream that ended before the provider's end marker."""
    return upstream_error(502, "the backend's stream ended before it was complete", TRUNCATED)


# --------------------------------------------------------------------------- data URLs

_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
_DATA_URL = re.compile(
    rf"data:(?P<type>{_TOKEN}/{_TOKEN})(?P<params>(?:;[^;,]+)*?);base64,(?P<data>.*)", re.S
)
_FORM = "data:<media type>[;parameters];base64,<data>"


@dataclass(frozen=True, slots=True)
class DataURL:
    """A parsed base64 data URL: the media type (lower-cased) and the checked base64 text."""

    media_type: str
    data: str
    params: tuple[str, ...] = ()

    def decode(self) -> bytes:
        return base64.b64decode(self.data)


def parse_data_url(url: str, where: str) -> DataURL:
    """`data:<media type>[;params];base64,<data>` with valid, non-empty base64 data.

    Anything else is a 400 `invalid_data_url` that names the field (`where`)."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise _bad_data_url(where, f"a data URL must be of the form {_FORM}")
    data = match["data"]
    try:
        valid = bool(data) and bool(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise _bad_data_url(where, "the data URL's data is not valid, non-empty base64")
    params = tuple(p for p in match["params"].split(";") if p)
    return DataURL(match["type"].lower(), data, params)


def _bad_data_url(where: str, problem: str) -> GatewayError:
    return bad_request(f"{where}: {problem}", param=where, code="invalid_data_url")


# --------------------------------------------------------------------------- stream decoders


class StreamDecoderBase(ABC, Generic[E]):
    """A `StreamDecoder` made of a framing (`frames`) and a translation (`translate`).

    Subclasses say how bytes become events, what each event becomes, and when the
    provider's end marker has been seen (`complete`). The base runs the loop: a
    GatewayError raised while decoding, or an error chunk a translation returns, ends the
    stream with that one error chunk after the chunks before it, and nothing comes after it;
    a stream that closes before it is `complete` ends with one `upstream_stream_truncated`
    error chunk.
    """

    def __init__(self) -> None:
        self.failed = False

    @abstractmethod
    def frames(self, data: bytes) -> Iterable[E]:
        """The events that `data` completes (may raise GatewayError for broken framing)."""

    def last_frames(self) -> Iterable[E]:
        """The events still pending when the stream ends."""
        return ()

    @abstractmethod
    def translate(self, event: E) -> list[Chunk]:
        """The canonical chunks for one event; raise GatewayError for a failure."""

    @property
    @abstractmethod
    def complete(self) -> bool:
        """Whether the stream's end marker has been seen."""

    def finish(self) -> list[Chunk]:
        """The chunks a complete stream ends with (e.g. a usage chunk held until the end)."""
        return []

    def feed(self, data: bytes) -> list[Chunk]:
        return self._run(lambda: self.frames(data), end=False)

    def close(self) -> list[Chunk]:
        return self._run(self.last_frames, end=True)

    def _run(self, frames: Callable[[], Iterable[E]], *, end: bool) -> list[Chunk]:
        out: list[Chunk] = []
        if self.failed:
            return out
        try:
            for event in frames():
                if self._take(out, self.translate(event)):
                    return out
            if end:
                self._take(out, self._ending())
        except GatewayError as error:
            self._take(out, [error_chunk(error)])
        return out

    def _ending(self) -> list[Chunk]:
        return self.finish() if self.complete else [error_chunk(truncated_error())]

    def _take(self, out: list[Chunk], chunks: list[Chunk]) -> bool:
        """Append `chunks` up to and including the first error chunk; True if there was one."""
        for chunk in chunks:
            out.append(chunk)
            if is_error_chunk(chunk):
                self.failed = True
                return True
        return False


class SSEStreamDecoder(StreamDecoderBase[SSEEvent]):
    """A `StreamDecoderBase` over server-sent events."""

    def __init__(self) -> None:
        super().__init__()
        self._sse = SSEDecoder()

    def frames(self, data: bytes) -> list[SSEEvent]:
        return self._sse.feed(data)

    def last_frames(self) -> list[SSEEvent]:
        return self._sse.close()
