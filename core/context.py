"""The per-request context every stage and every hook receives instead of the raw flow."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelway.canonical import CanonicalRequest, Usage

if TYPE_CHECKING:
    from modelway.errors import GatewayError
    from modelway.ingress import Endpoint, IngressAPI, WireSupport
    from modelway.runtime import Backend, Gateway, Route
    from modelway.uploads import UploadBody
    from modelway.wire import Call, RequestView


@dataclass(slots=True)
class ClientInfo:
    """Who sent the request. `identity` is safe to log: never a raw key."""

    address: str
    identity: str
    api_key: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class Principal:
    """Who is calling, as a governance plugin identified the key (`modelway_authenticate`).

    `key_id` is the key's public id (never the secret); `grants` is the authenticating
    plugin's own record of what the key may do (models, routes, limits, budgets).
    """

    key_id: str
    consumer: str | None = None
    team: str | None = None
    kind: str = "user"
    name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    grants: Any = field(default=None, repr=False)


@dataclass(slots=True)
class Timings:
    """Monotonic timestamps (seconds) of the request's milestones."""

    start: float = field(default_factory=time.monotonic)
    upstream_start: float | None = None
    first_byte: float | None = None
    upstream_end: float | None = None
    """When the serving backend's answer was read to its end (a stream's last byte)."""
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

    `call` is the client's request in its own wire API (policies edit it through `view`);
    `request` is its canonical translation, made only when a backend of another wire API is
    tried (`hub`). `annotations` is for plugins: small JSON-safe values there appear in the
    access log under `extra`. `gateway` is the configuration the request started on: every
    hook of the request runs on it, also across a reload.
    """

    id: str
    method: str
    path: str
    host: str
    headers: dict[str, str]
    client: ClientInfo
    query: str = ""
    """The query string, without `?`."""
    api: IngressAPI | None = None
    endpoint: Endpoint | None = None
    call: Call | None = None
    wire: WireSupport | None = None
    request: CanonicalRequest | None = None
    route: Route | None = None
    plan: Plan | None = None
    attempts: list[Attempt] = field(default_factory=list)
    served_by: Attempt | None = None
    upstream_model: str | None = None
    upstream_headers: dict[str, str] = field(default_factory=dict)
    """Headers of the backend's answer the client gets too (rate limits, retry hints)."""
    status: int | None = None
    error: GatewayError | None = None
    usage: Usage | None = None
    timings: Timings = field(default_factory=Timings)
    annotations: dict[str, Any] = field(default_factory=dict)
    gateway: Gateway | None = field(default=None, repr=False)
    """The gateway serving the request (its backends, settings, plugins)."""
    lane: str | None = None
    """`native` (the client's own body went upstream) or `hub` (translated), once sent."""
    answered: bool = False
    """The whole answer was handed to the client's connection (a stream's end included): a
    client that closes the connection right after is not a failed request."""
    principal: Principal | None = None
    """Who is calling, when a governance plugin identified the client's key."""
    follow_up: str | None = None
    """The scope of the signed follow-up URL the request came to: the backend its upload
    belongs to (`modelway.followups`)."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """The gateway's own answer headers (its rate limits: `x-ratelimit-*`), given to the
    client also on errors; a gateway limit replaces the upstream's when it is tighter."""
    body: bytes = field(default=b"", repr=False)
    """The raw request body, given to local endpoints that take one (the admin API)."""
    plugin_state: dict[str, Any] = field(default_factory=dict, repr=False)
    """Per-request state of plugins, by plugin name (reservations to settle); not logged."""
    upload: UploadBody | None = field(default=None, repr=False)
    """A pass-through upload's body, sent upstream as it arrives (`modelway.uploads`)."""

    @property
    def streaming(self) -> bool:
        if self.call is not None:
            return self.call.stream
        return bool(self.request and self.request.stream)

    @property
    def model(self) -> str | None:
        """The model the client asked for."""
        if self.call is not None:
            return self.call.model
        return self.request.model if self.request else None

    @property
    def view(self) -> RequestView:
        """The policy view over the client's request (see `modelway.wire`)."""
        assert self.call is not None and self.call.view is not None
        return self.call.view

    def forwarded_headers(self) -> dict[str, str]:
        """The client's feature headers the same-API lane passes upstream (`anthropic-beta`,
        `openai-beta`, `idempotency-key` ...), as the client's wire API names them."""
        names = self.wire.forward_headers if self.wire is not None else ()
        return {name: self.headers[name] for name in names if name in self.headers}

    def hub(self) -> CanonicalRequest:
        """The canonical translation of the call, made once (raises GatewayError 400 when
        the call cannot be translated)."""
        if self.request is None:
            assert self.call is not None and self.api is not None
            self.request = self.api.to_hub(self.call)
        return self.request
