"""What ingress-API plugins implement: a client-facing API, its wire formats, its local answers.

An `IngressAPI` matches requests, decodes them into a `Call` (the client's own body), and
speaks its API both ways: answers, streams and errors in its own shape. For each wire API it
serves it provides a `WireSupport`: the policy views over that wire's bodies, the usage of its
answers, and the same-API stream scanner. `LocalEndpoint`s are answered by the gateway itself
(admin pages, metrics) and are registered by any plugin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation, Usage
from modelway.errors import GatewayError

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway
    from modelway.wire import Call, RequestView, ResponseView, TextFilter


@dataclass(frozen=True)
class Endpoint:
    """One operation of an ingress API, e.g. OpenAI `POST /v1/chat/completions`.

    `wire` names the wire API of its bodies (`modelway.wire`); `local` endpoints are answered
    by the ingress API itself (`IngressAPI.local_answer`).
    """

    api: str
    operation: Operation
    name: str
    local: bool = False
    wire: str | None = None


@dataclass(slots=True)
class LocalAnswer:
    """An answer the gateway gives itself, with no upstream call."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


LocalHandler = Callable[["RequestContext"], Awaitable[LocalAnswer]]


@dataclass(frozen=True)
class LocalEndpoint:
    """A path the gateway answers itself (registered with `modelway_local_endpoints`).

    `path` is exact, or a prefix when `prefix` is set. `admin` endpoints need an admin key
    (`gateway.admin_keys`); without admin keys they are served on loopback listeners only.
    A `browser` endpoint (a page) also takes the key as an HTTP Basic password, and a missing
    or wrong key is answered with a Basic challenge, so that a browser asks for it.
    Errors are answered in OpenAI's JSON shape.
    """

    method: str
    path: str
    handler: LocalHandler
    name: str
    admin: bool = False
    prefix: bool = False
    browser: bool = False

    def matches(self, method: str, path: str) -> bool:
        if method != self.method and not (self.method == "GET" and method == "HEAD"):
            return False
        return path.startswith(self.path) if self.prefix else path == self.path


class StreamEncoder(Protocol):
    """Turns canonical chunks into the client's stream wire format."""

    content_type: str

    def encode(self, chunk: dict[str, Any]) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


class NativeStream(Protocol):
    """A same-API stream on its way to the client: the upstream's own events.

    `feed` returns the bytes to send on (the input itself when no filter edits the text);
    the stream is read only for what the gateway needs. `error` is set when the stream
    carried an error event or (after `close`) ended before it was complete.
    """

    usage: Usage | None
    error: GatewayError | None

    async def feed(self, data: bytes) -> bytes: ...

    async def close(self) -> bytes: ...

    def error_event(self, error: GatewayError) -> bytes:
        """An error event in this wire's stream format, for a failure the gateway saw."""
        ...


class WireSupport(ABC):
    """What the gateway needs to know of one wire API's bodies (e.g. `anthropic.messages`)."""

    name: str
    forward_headers: tuple[str, ...] = ()
    """Client request headers the same-API lane sends upstream (feature and beta flags)."""
    filterable_streams: bool = True
    """Whether stream text filters (PII masking) can edit this wire's streams; a stream on a
    route with such a filter is refused (400) when they cannot."""
    continuable: bool = False
    """Whether a broken same-API stream can go on with a translated one (same event shape)."""

    @abstractmethod
    def view(self, call: Call) -> RequestView:
        """The policy view over the call's body."""

    answer_key: str | None = None
    """A list every successful JSON answer of this wire has (`choices`, `content` ...); an
    answer without it is unusable (502). None: any JSON object (or any body) passes."""
    json_answers: bool = True
    """Whether successful answers are JSON (pass-through endpoints may answer audio ...)."""

    def usage(self, body: Any) -> Usage | None:
        """Token usage of a complete same-API answer (parsed JSON)."""
        return None

    def answered(self, ctx: RequestContext, body: Any) -> None:
        """A complete same-API answer (parsed JSON, after response policies) goes to the
        client; a wire API that keeps state about its answers (stored responses) notes it."""

    def response_view(self, body: dict[str, Any]) -> ResponseView | None:
        """The policy view over a complete same-API answer, or None if it has no text."""
        return None

    @abstractmethod
    def native_stream(
        self, ctx: RequestContext, filters: list[TextFilter], strip_usage: bool
    ) -> NativeStream:
        """A scanner (and, with filters, editor) for one same-API stream. `strip_usage`: the
        gateway asked the backend for usage the client did not ask for; remove it again."""


class IngressAPI(ABC):
    """An API the gateway accepts from clients (OpenAI, Anthropic, ...), both ways."""

    name: str
    paths: tuple[str, ...] = ()
    """The paths it serves, for people (named in the unknown-path error)."""

    @abstractmethod
    def match(self, method: str, path: str) -> Endpoint | None:
        """The endpoint this request is for, or None if this API does not serve it."""

    def claims(self, path: str) -> bool:
        """Whether an unmatched path still belongs to this API (for its 404/405 errors)."""
        return False

    def fallback(self, method: str, path: str) -> Endpoint | None:
        """An endpoint for a request no API matched (e.g. every other `/v1/*` path, passed
        through to a backend of the same API); asked after every API's `match`."""
        return None

    def own_fallback(self, method: str, path: str) -> Endpoint | None:
        """`fallback` for a request this API `recognizes` as its client's: it may take paths
        other APIs share (Google's `/v1/files` from a Gemini client)."""
        return self.fallback(method, path)

    def recognizes(self, path: str, headers: Mapping[str, str]) -> bool:
        """Whether the request comes from a client of this API, by its headers (Anthropic's
        `anthropic-version`) or a path only this API has. Such an API is asked before the
        others (`match`, `claims`, `fallback`), so that a path several APIs serve (`/v1/models`,
        `/v1/files`) is answered in its client's API, and a path no API serves is a 404 in
        its client's shape."""
        return False

    @abstractmethod
    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Call:
        """The client's request as a `Call`; raise GatewayError (4xx) for bad input."""

    @abstractmethod
    def wire(self, name: str) -> WireSupport:
        """The support of one of the wire APIs this API's endpoints speak."""

    @abstractmethod
    def to_hub(self, call: Call) -> CanonicalRequest:
        """The call translated to the canonical form, for a backend of another wire API;
        GatewayError 400 naming what cannot be translated."""

    @abstractmethod
    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        """The client's JSON answer for a canonical answer."""

    @abstractmethod
    def stream_encoder(self, ctx: RequestContext) -> StreamEncoder:
        """A fresh encoder for one translated streamed answer."""

    @abstractmethod
    def error_body(self, error: GatewayError) -> bytes:
        """The client's error JSON for `error`."""

    def error_headers(self, error: GatewayError) -> dict[str, str]:
        return {"content-type": "application/json", **error.headers}

    async def prepare(self, ctx: RequestContext) -> None:
        """After `decode` and before routing: asynchronous work a call needs first (e.g.
        loading the stored conversation a Responses `previous_response_id` continues);
        raise GatewayError (4xx) for what it finds wrong. Nothing by default."""

    def stream_start(self, ctx: RequestContext) -> bytes:
        """Bytes a translated stream starts with before the backend answers (e.g. the
        Responses API's `response.created`); empty by default."""
        return b""

    async def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        """Answer a `local` endpoint (the models list) from the gateway itself."""
        raise GatewayError(404, f"{endpoint.name} is not served here", code="not_found")
