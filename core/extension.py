"""The typed objects plugins implement or return: providers, ingress APIs, policies, decisions.

Hooks in `modelway.hookspecs` register these; the request path calls only these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation, UpstreamRequest
from modelway.errors import GatewayError, upstream_error

if TYPE_CHECKING:
    from modelway.config import BackendConfig
    from modelway.context import RequestContext
    from modelway.runtime import Gateway


# --------------------------------------------------------------------------- upstream I/O


class UpstreamResponse(Protocol):
    """A backend's answer as it arrives: status and headers first, then the body."""

    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class Transport(Protocol):
    """Sends an `UpstreamRequest`. The default is HTTP; a provider may bring its own."""

    async def send(self, request: UpstreamRequest, *, stream: bool) -> UpstreamResponse: ...


# --------------------------------------------------------------------------- providers


class StreamDecoder(Protocol):
    """Turns a provider's streamed bytes into canonical `chat.completion.chunk` dicts.

    A failure is reported in order, as an error chunk `{"error": {"message", "type", "code"}}`
    after the chunks that came before it; `close()` returns one too when the stream ended
    before it was complete (e.g. no end marker), so a dropped connection is never mistaken
    for a finished answer.
    """

    def feed(self, data: bytes) -> list[dict[str, Any]]: ...

    def close(self) -> list[dict[str, Any]]: ...


class Provider(ABC):
    """One backend's translation to and from its provider's wire format, plus auth.

    Pure: no I/O. The gateway sends what `build_request` returns with `transport` (HTTP when
    None) and hands the answer back to `parse_response` or `stream_decoder`.
    """

    operations: frozenset[Operation] = frozenset({Operation.CHAT})
    transport: Transport | None = None
    stream_content_types: tuple[str, ...] = ("text/event-stream",)
    """Content types of a streamed answer; anything else is treated as a failed stream."""

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        self.backend = backend
        self.options = options

    @abstractmethod
    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        """The wire request for `request` (already carrying the upstream model name)."""

    @abstractmethod
    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        """A successful non-streamed answer in canonical shape; raise GatewayError if garbled."""

    @abstractmethod
    def stream_decoder(self, ctx: RequestContext, request: CanonicalRequest) -> StreamDecoder:
        """A fresh decoder for one streamed answer."""

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        """The backend's error answer as a GatewayError; the status is kept."""
        return upstream_error(status, f"upstream answered HTTP {status}")

    async def startup(self) -> None:
        """Called once when the gateway starts (e.g. to open a local server)."""

    async def shutdown(self) -> None:
        """Called once when the gateway stops."""


@dataclass(frozen=True)
class ProviderSpec:
    """Registers a provider type: backends with `provider: <name>` use it.

    `options_model` validates the backend keys beyond the common ones; `factory` builds one
    Provider per backend.
    """

    name: str
    factory: Callable[[BackendConfig, BaseModel | None], Provider]
    options_model: type[BaseModel] | None = None
    description: str = ""
    requires_api_key: bool = False
    default_hosts: tuple[str, ...] = ()


# --------------------------------------------------------------------------- ingress APIs


@dataclass(frozen=True)
class Endpoint:
    """One operation of an ingress API, e.g. OpenAI `POST /v1/chat/completions`."""

    api: str
    operation: Operation
    name: str
    local: bool = False


@dataclass(slots=True)
class LocalAnswer:
    """An answer the gateway gives itself, with no upstream call."""

    status: int
    body: bytes
    content_type: str = "application/json"


class StreamEncoder(Protocol):
    """Turns canonical chunks into the client's stream wire format."""

    content_type: str

    def encode(self, chunk: dict[str, Any]) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


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

    @abstractmethod
    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> CanonicalRequest:
        """The canonical request; raise GatewayError (4xx) for bad input."""

    @abstractmethod
    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        """The client's JSON answer."""

    @abstractmethod
    def stream_encoder(self, ctx: RequestContext) -> StreamEncoder:
        """A fresh encoder for one streamed answer."""

    @abstractmethod
    def error_body(self, error: GatewayError) -> bytes:
        """The client's error JSON for `error`."""

    def error_headers(self, error: GatewayError) -> dict[str, str]:
        return {"content-type": "application/json", **error.headers}

    async def local_answer_async(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        """As `local_answer`, for answers that must await (e.g. the admin API's reload)."""
        return self.local_answer(endpoint, ctx, gateway)

    def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        """Answer a `local` endpoint (the models list, an admin view) from the gateway itself."""
        raise GatewayError(404, f"{endpoint.name} is not served here", code="not_found")


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's verdict: allow (the default) or reject with a status and message."""

    allowed: bool = True
    status: int = 400
    message: str = ""
    code: str | None = None
    findings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def allow(cls, **findings: Any) -> Decision:
        return cls(True, findings=findings)

    @classmethod
    def reject(cls, message: str, *, status: int = 400, code: str | None = None) -> Decision:
        return cls(False, status, message, code)

    def as_error(self) -> GatewayError:
        return GatewayError(self.status, self.message, "invalid_request_error", self.code)


class StreamFilter(Protocol):
    """Edits a streamed answer chunk by chunk; may hold text back and release it later.

    Async so that CPU-heavy checks can run in a worker pool without blocking the proxy.
    """

    async def on_chunk(self, chunk: dict[str, Any]) -> list[dict[str, Any]]: ...

    async def on_end(self) -> list[dict[str, Any]]: ...


class Policy:
    """A configured policy on one route. Override what applies; defaults do nothing."""

    name: str = "policy"

    async def on_request(self, ctx: RequestContext) -> Decision | None:
        """Inspect or edit `ctx.request`; return a rejecting Decision to stop the request."""
        return None

    async def on_response(
        self, ctx: RequestContext, response: CanonicalResponse
    ) -> Decision | None:
        """Inspect or edit a complete answer before the client sees it."""
        return None

    def stream_filter(self, ctx: RequestContext) -> StreamFilter | None:
        """A filter for this request's streamed answer, or None to leave it alone."""
        return None


@dataclass(frozen=True)
class PolicySpec:
    """Registers a policy type that routes enable under `policies: {<name>: {...}}`."""

    name: str
    factory: Callable[[Any], Policy]
    config_model: type[BaseModel] | None = None
    description: str = ""
