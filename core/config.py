"""The configuration file's shape, as pydantic models. Unknown keys are errors everywhere.

Sections that belong to a plugin (a plugin's settings, a provider's backend options, a
route's policy settings) are kept raw here and validated by that plugin's own model when the
runtime is built (see `modelway.runtime`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from modelway.pricing import PriceOverride

MiB = 1024 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


LLM_HOSTS = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "*.openai.azure.com",
    "*-aiplatform.googleapis.com",
    "bedrock-runtime.*.amazonaws.com",
)


class TimeoutsConfig(Strict):
    """Upstream timeouts in seconds (`null`: no limit). Per backend and per route, a value
    left out is taken from the next level: route, then backend, then `gateway.timeouts`.

    `connect`: opening the connection (TCP and TLS), failover trigger `connect_timeout`;
    `first_byte`: from sending the request to the answer's headers, trigger `slow`;
    `idle`: the longest silence while waiting for or reading the answer, trigger `timeout`;
    `total`: one attempt from sending to the answer's last byte, trigger `timeout`.
    Each is a 504 (`upstream_timeout`) in the client's API shape; after bytes of a stream
    reached the client, an error event ends the stream.
    """

    connect: float | None = Field(None, gt=0)
    first_byte: float | None = Field(None, gt=0)
    idle: float | None = Field(None, gt=0)
    total: float | None = Field(None, gt=0)

    def given(self) -> dict[str, float | None]:
        """The values set explicitly at this level."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class GatewayTimeouts(TimeoutsConfig):
    """`gateway.timeouts`: the defaults of every backend and route."""

    connect: float | None = Field(10.0, gt=0)
    idle: float | None = Field(600.0, gt=0)


class ClientLimits(Strict):
    """`gateway.clients`: what a client connection may take (timeouts in seconds).

    `header_timeout`: a new connection's first request headers must be complete within it;
    `idle_timeout`: after an answer, the next request's headers (a keep-alive connection
    that stays silent is closed); `body_timeout`: from the headers to the end of the body
    (both a 408); `max_connections`: open client connections beyond it are answered 503 and
    closed at once; `max_header_bytes`: larger request headers are a 431.
    """

    header_timeout: float = Field(30.0, gt=0)
    body_timeout: float = Field(120.0, gt=0)
    idle_timeout: float = Field(120.0, gt=0)
    max_connections: int = Field(1000, gt=0)
    max_header_bytes: int = Field(64 * 1024, ge=1024)


_LEGACY_TIMEOUTS = {"connect_timeout_seconds": "connect", "upstream_timeout_seconds": "idle"}


class GatewaySettings(Strict):
    """Process-wide settings: where to listen and the limits that protect the gateway."""

    mode: Literal["reverse", "forward"] = "reverse"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(10 * MiB, gt=0)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    timeouts: GatewayTimeouts = Field(default_factory=GatewayTimeouts)
    """Upstream timeouts (`connect_timeout_seconds` and `upstream_timeout_seconds` are
    accepted as the older names of `timeouts.connect` and `timeouts.idle`)."""
    clients: ClientLimits = Field(default_factory=ClientLimits)
    max_answer_bytes: int = Field(64 * MiB, gt=0)
    """The largest whole (not streamed) upstream answer; beyond it the client gets a 502
    and the answer is dropped as it arrives. Streams are passed on in pieces, unbounded."""
    api_keys: list[SecretStr] = Field(default_factory=list)
    """Keys clients must send (any API's key header); empty: no key is needed."""
    admin_keys: list[SecretStr] = Field(default_factory=list)
    """Keys the admin endpoints (`/modelway/*`) need. Without them the admin endpoints answer
    on a loopback listener only (taking the client keys there, if any)."""
    identity_header: str = "x-user-id"
    upload_secret: SecretStr | None = None
    """The secret that signs the upload URLs the gateway hands out (Gemini's resumable
    uploads, `modelway.followups`); unset: `MODELWAY_UPLOAD_SECRET`, else one per run. Give
    gateways behind one address the same."""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """With the `metrics` plugin: serve `GET /metrics` on this port of `host` too (shared by
    the workers); unset, it is served on the gateway's own port only."""
    ca_dir: str = "~/.modelway"
    """Where the forward proxy's CA lives (created on first run, key readable by the owner)."""
    proxy_auth: SecretStr | None = None
    """Forward mode: `user:password` clients must give (else 407)."""
    unmatched: Literal["pass", "deny"] = "deny"
    """Forward mode: requests to an intercepted LLM host that match no API path or route are
    passed to the real host untouched, or denied with a clear error."""
    plain_http: Literal["pass", "deny"] = "deny"
    """Forward mode: plain-HTTP requests to hosts that are not intercepted (not LLM hosts)
    are refused with a 403 (`deny`), or passed untouched (`pass`: an open HTTP proxy to any
    host, unless `proxy_auth` is set)."""
    intercept_hosts: list[str] = Field(default_factory=lambda: list(LLM_HOSTS))
    """Forward mode: host globs whose TLS is intercepted (default: the enabled providers'
    hosts). Every other host is tunnelled untouched."""
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"
    """The event loop: asyncio's own, or uvloop (`modelway[uvloop]`); the environment
    variable `MODELWAY_EVENT_LOOP` overrides it."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_timeouts(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not any(k in value for k in _LEGACY_TIMEOUTS):
            return value
        value = dict(value)
        timeouts = dict(value.get("timeouts") or {})
        for old, new in _LEGACY_TIMEOUTS.items():
            if old in value:
                timeouts.setdefault(new, value.pop(old))
        value["timeouts"] = timeouts
        return value

    @field_validator("api_keys", "admin_keys")
    @classmethod
    def _no_empty_key(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(keys):
            if not key.get_secret_value().strip():
                raise ValueError(
                    f"key {index} is empty (an unset environment variable?): an empty key "
                    "would switch authentication off; remove it or set the variable"
                )
        return keys


class StateSettings(Strict):
    """`state:`: where shared state lives (limits, budgets, created keys, stored responses,
    and, when shared, backend ejections and the A/B statistics).

    `memory` keeps it in this process (one worker); with `directory`, what must survive a
    restart (created keys, spend) is kept in a SQLite file there too. `redis` shares it
    between workers and instances (`pip install 'modelway[redis]'`).
    """

    store: Literal["memory", "redis"] = Field(
        "memory", validation_alias=AliasChoices("store", "backend")
    )
    """`memory` or `redis` (`backend:` is accepted as another name for it)."""
    directory: str | None = None
    url: str | None = None
    """Redis: `redis://host:6379/0`, `rediss://...` or `unix:///path/redis.sock`."""
    timeout_seconds: float = Field(0.25, gt=0)
    """The longest wait for one answer of the store; then it counts as unreachable."""
    retry_seconds: float = Field(1.0, ge=0)
    """After the store failed, calls fail at once for this long before it is tried again."""
    prefix: str = "modelway:"
    """Redis: the prefix of every key (several gateways can share one Redis)."""

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateSettings:
        if self.store == "redis" and not self.url:
            raise ValueError("store: redis needs a url (redis://host:6379/0 or unix:///path)")
        return self


class BackendConfig(BaseModel):
    """One upstream model endpoint. Keys beyond these are the provider's own options."""

    model_config = ConfigDict(extra="allow")

    provider: str
    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    auth: Literal["gateway", "passthrough"] = "gateway"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(None, gt=0)
    """The older name of `timeouts.idle` for this backend."""
    timeouts: TimeoutsConfig | None = None
    """This backend's upstream timeouts (each left out: `gateway.timeouts`)."""
    optional: bool = False
    same_api: bool = True
    """False: clients speaking this backend's own API are translated through the hub too
    (decoded and encoded again) instead of taking the same-API lane (for comparisons)."""
    price: PriceOverride | None = None
    """USD per million tokens, replacing the shipped price table's for this backend."""

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key and self.api_key.get_secret_value())


class MatchConfig(Strict):
    """Which requests a route takes: model name (exact or glob), path and header globs."""

    model: str | list[str] = "*"
    path: str | None = None
    host: str | None = None
    """A glob on the request's host (useful in forward mode: `api.openai.com`)."""
    headers: dict[str, str] = Field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return [self.model] if isinstance(self.model, str) else list(self.model)


class TargetConfig(Strict):
    backend: str
    weight: float = Field(1.0, ge=0)
    model: str | None = None


class SplitConfig(Strict):
    """Weighted targets; `cohort` (`header:<name>`, `field:<name>` or `key`) makes it sticky."""

    targets: list[TargetConfig] = Field(min_length=1)
    cohort: str | None = None
    force_header: str | None = None
    """A request header naming a target's backend forces that variant (for testing)."""

    @field_validator("cohort")
    @classmethod
    def _cohort_form(cls, value: str | None) -> str | None:
        if value is None or value == "key" or value.startswith(("header:", "field:")):
            return value
        raise ValueError("cohort must be 'key', 'header:<name>' or 'field:<name>'")

    @model_validator(mode="after")
    def _some_weight(self) -> SplitConfig:
        if not any(t.weight > 0 for t in self.targets):
            raise ValueError("at least one target needs a weight above 0")
        return self


Trigger = Literal[
    "connect", "dns", "tls", "connect_timeout", "timeout", "slow", "disconnect", "5xx", "429"
]
ALL_TRIGGERS: tuple[str, ...] = (
    "connect",
    "dns",
    "tls",
    "connect_timeout",
    "timeout",
    "slow",
    "disconnect",
    "5xx",
    "429",
)


class FailoverConfig(Strict):
    """Priority groups tried in order after the primary target, and what makes them tried.

    Within a group, backends are load-balanced (a random order per request). `slow` means no
    response headers within `first_byte_timeout_seconds`.
    """

    groups: list[list[str]] = Field(default_factory=list)
    # Not `on`: YAML 1.1 reads that key as the boolean true.
    retry_on: list[Trigger] = Field(default_factory=lambda: list(ALL_TRIGGERS))  # type: ignore[arg-type]
    max_attempts: int = Field(3, ge=1, le=20)
    budget_seconds: float | None = Field(None, gt=0)
    first_byte_timeout_seconds: float | None = Field(None, gt=0)
    continue_streams: bool = False
    """Mid-stream failure: continue the answer on the next backend inside the same stream."""

    @field_validator("retry_on", mode="before")
    @classmethod
    def _status_as_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 429 as a number.
        return (
            [str(v) if isinstance(v, int) else v for v in value]
            if isinstance(value, list)
            else value
        )

    @model_validator(mode="before")
    @classmethod
    def _groups_shorthand(cls, value: Any) -> Any:
        return {"groups": value} if isinstance(value, list) else value


class RouteConfig(Strict):
    """A route: what it matches, where it sends, how it fails over, which policies apply.

    The primary destination is `backend` or `split`; `failover` adds priority groups (and may
    stand alone: then its first group is the primary).
    """

    name: str | None = None
    match: MatchConfig = Field(default_factory=MatchConfig)
    backend: str | None = None
    split: SplitConfig | None = None
    failover: FailoverConfig | None = None
    timeouts: TimeoutsConfig | None = None
    """This route's upstream timeouts, over the backend's and the gateway's
    (`failover.first_byte_timeout_seconds` is the older name of `timeouts.first_byte`)."""
    policies: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_destination(self) -> RouteConfig:
        if self.backend is not None and self.split is not None:
            raise ValueError("a route takes exactly one of 'backend' or 'split', not both")
        if self.backend is None and self.split is None and not self._groups:
            raise ValueError(
                "a route needs exactly one of 'backend' or 'split' (or only 'failover' groups)"
            )
        return self

    @property
    def _groups(self) -> list[list[str]]:
        return [g for g in (self.failover.groups if self.failover else []) if g]

    @property
    def targets(self) -> list[TargetConfig]:
        """The primary targets (without the failover groups)."""
        if self.split is not None:
            return self.split.targets
        if self.backend is not None:
            return [TargetConfig(backend=self.backend)]
        return [TargetConfig(backend=name) for name in self._groups[0]]


class GatewayConfig(Strict):
    """The whole file. `plugins` is a list of names, or a mapping of name to settings."""

    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    state: StateSettings = Field(default_factory=StateSettings)
    plugins: dict[str, dict[str, Any] | None] | None = None
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("plugins", mode="before")
    @classmethod
    def _plugin_list(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        enabled: dict[str, Any] = {}
        for index, item in enumerate(value):
            if isinstance(item, str):
                enabled[item] = None
            elif isinstance(item, dict) and len(item) == 1:
                enabled.update(item)
            else:
                raise ValueError(f"item {index}: expected a plugin name or {{name: settings}}")
        return enabled
