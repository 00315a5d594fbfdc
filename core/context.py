"""The per-request context every stage and every hook receives instead of the raw flow."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelway.canonical import CanonicalRequest, Usage

if TYPE_CHECKING:
    from modelway.errors import GatewayError
    from modelway.extension import Endpoint, IngressAPI
    from modelway.runtime import Backend, Gateway, Route


@dataclass(slots=True)
class ClientInfo:
    """Who sent the request. `identity` is safe to log: never a raw key."""

    address: str
    identity: str
    api_key: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class Timings:
    """Monotonic timestamps (seconds) of the request's milestones."""

    start: float = field(default_factory=time.monotonic)
    upstream_start: float | None = None
    first_byte: float | None = None
    end: float | None = None

    def since_start_ms(self, moment: float | None) -> float | None:
        return None if moment is None else round((moment - self.start) * 1000, 2)


@dataclass(slots=True)
class AttemptOutcome:
    """What happened when one attempt was sent to one backend."""

    ok: bool
    status: int | None = None
    error: str | None = None
    retriable: bool = False
    retry_after: float | None = None
    latency_ms: float | None = None


@dataclass(slots=True)
class Attempt:
    """One backend to try, in plan order. `model` overrides the model sent upstream."""

    backend: Backend
    model: str | None = None
    group: int = 0
    variant: str | None = None
    outcome: AttemptOutcome | None = None


@dataclass(slots=True)
class Plan:
    """The ordered attempts for one request and the limits on trying them."""

    attempts: list[Attempt]
    max_attempts: int = 1
    budget_seconds: float | None = None


@dataclass(slots=True)
class RequestContext:
    """Everything the gateway knows about one request while it is in flight.

    `annotations` is for plugins: small JSON-safe values there appear in the access log under
    `extra`. `flow` is the underlying mitmproxy flow, an escape hatch only.
    """

    id: str
    method: str
    path: str
    host: str
    headers: dict[str, str]
    client: ClientInfo
    api: IngressAPI | None = None
    endpoint: Endpoint | None = None
    request: CanonicalRequest | None = None
    route: Route | None = None
    plan: Plan | None = None
    attempts: list[Attempt] = field(default_factory=list)
    served_by: Attempt | None = None
    upstream_model: str | None = None
    status: int | None = None
    error: GatewayError | None = None
    usage: Usage | None = None
    timings: Timings = field(default_factory=Timings)
    annotations: dict[str, Any] = field(default_factory=dict)
    gateway: Gateway | None = field(default=None, repr=False)
    """The gateway serving the request (its backends, settings, plugins)."""
    flow: Any = field(default=None, repr=False)

    @property
    def streaming(self) -> bool:
        return bool(self.request and self.request.stream)
