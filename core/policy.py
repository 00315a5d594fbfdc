"""What policy plugins implement: a per-route policy that reads and edits requests and answers.

A policy is written once against the views of `modelway.wire`, so it works on every client
API and on both lanes (same-API and translated): `on_request` sees the client's body through
`ctx.view`, `on_response` a complete answer's `ResponseView`, and `stream_filter` returns a
`TextFilter` for streamed answer text. A `Decision` allows or rejects; a rejection reaches the
client in its own API's error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from modelway.errors import GatewayError

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway
    from modelway.wire import ResponseView, TextFilter


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
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        return GatewayError(self.status, self.message, kind, self.code)


class Policy:
    """A configured policy on one route. Override what applies; defaults do nothing."""

    name: str = "policy"

    async def startup(self, gateway: Gateway) -> None:
        """The configuration holding this policy starts serving (start pools, sessions)."""

    async def shutdown(self) -> None:
        """The configuration holding this policy is retired or the gateway stops."""

    async def on_request(self, ctx: RequestContext) -> Decision | None:
        """Inspect or edit the request through `ctx.view`; a rejecting Decision stops it."""
        return None

    async def on_response(self, ctx: RequestContext, response: ResponseView) -> Decision | None:
        """Inspect or edit a complete answer before the client sees it."""
        return None

    def stream_filter(self, ctx: RequestContext) -> TextFilter | None:
        """A filter for this request's streamed answer text, or None to leave it alone."""
        return None


@dataclass(frozen=True)
class PolicySpec:
    """Registers a policy type that routes enable under `policies: {<name>: {...}}`."""

    name: str
    factory: Callable[[Any], Policy]
    config_model: type[BaseModel] | None = None
    description: str = ""
