"""What provider plugins implement: a backend's wire format, both ways, plus its credentials.

Hooks in `modelway.hookspecs` register these; the request path calls only these methods. The
ingress-API and policy types live in `modelway.ingress` and `modelway.policy`, and are
re-exported here for plugins written against this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation, UpstreamRequest
from modelway.errors import GatewayError, upstream_error
from modelway.ingress import (
    Endpoint,
    IngressAPI,
    LocalAnswer,
    LocalEndpoint,
    NativeStream,
    StreamEncoder,
    WireSupport,
)
from modelway.policy import Decision, Policy, PolicySpec

if TYPE_CHECKING:
    from modelway.config import BackendConfig
    from modelway.context import RequestContext
    from modelway.wire import Call

__all__ = [
    "Decision",
    "Endpoint",
    "IngressAPI",
    "LocalAnswer",
    "LocalEndpoint",
    "NativeStream",
    "Policy",
    "PolicySpec",
    "Provider",
    "ProviderSpec",
    "StreamDecoder",
    "StreamEncoder",
    "Transport",
    "UpstreamResponse",
    "WireSupport",
]


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

    Pure: no I/O. The gateway sends what `build_request` (a translated request) or
    `build_native` (the client's own body, same-API lane) returns with `transport` (HTTP
    when None) and hands the answer back to `parse_response` / `stream_decoder`, or, on the
    same-API lane, to the client as it is.
    """

    operations: frozenset[Operation] = frozenset({Operation.CHAT})
    transport: Transport | None = None
    stream_content_types: tuple[str, ...] = ("text/event-stream",)
    """Content types of a streamed answer; anything else is treated as a failed stream."""
    native_streams: bool = True
    """Whether streams take the same-API lane too (a backend whose streams need cleaning up
    for the client, such as Azure's content-filter chunks, decodes them instead)."""

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        self.backend = backend
        self.options = options

    def streams_natively(self, wire: str) -> bool:
        """Whether streams of `wire` take the same-API lane (`native_streams` by default)."""
        return self.native_streams

    def native_wires(self, model: str) -> frozenset[str]:
        """The wire APIs (`modelway.wire`) this backend speaks itself for `model`: a client
        speaking one of them gets the same-API lane (`build_native`)."""
        return frozenset()

    def hub_features(self, model: str) -> frozenset[str]:
        """The optional hub features (`modelway.hubfit.FEATURES`: `top_k`, `service_tier`,
        Anthropic's own fields and tools) this backend sends on for `model`. The gateway
        drops or refuses the others before `build_request`; none by default."""
        return frozenset()

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The wire request for the client's own body (same-API lane), for `model`."""
        raise GatewayError(
            400, f"backend '{self.backend.provider}' has no same-API lane", code="unsupported"
        )

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

    def answer_headers(self, ctx: RequestContext, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers of this backend's answer the client gets too, beyond the rate limits,
        retry hints and request id of every backend (Gemini: its resumable-upload headers,
        the upload URL pointed at the gateway); none by default."""
        return {}

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
