# mypy: disable-error-code="empty-body"
"""Every extension point of modelway, grouped by family. Read this module to know them all.

Each hook is prefixed `modelway_` so that a plugin object can never be mistaken for a
mitmproxy addon. Plugins implement them with `@modelway.hookimpl`. Built-in features are
plugins of this same system (see `modelway.pluginmanager.BUILTIN_PLUGINS`).

Call semantics: registration hooks are 1:N and collect lists; decision hooks are
`firstresult` (the first non-None answer wins, so a plugin returns None to pass); observation
hooks are 1:N and their return values are ignored. Any hook may be implemented with
`wrapper=True` for timing, tracing or error mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from modelway.canonical import UpstreamRequest
    from modelway.context import Attempt, AttemptOutcome, Plan, Principal, RequestContext
    from modelway.extension import IngressAPI, LocalEndpoint, PolicySpec, ProviderSpec
    from modelway.runtime import Gateway, Route

hookspec = pluggy.HookspecMarker("modelway")

# --------------------------------------------------------------------------------------------
# Provider family: who can serve a request, and which client APIs the gateway speaks.
# --------------------------------------------------------------------------------------------


@hookspec
def modelway_providers() -> list[ProviderSpec]:
    """Register provider types (1:N, collected at start-up).

    Return a list of `ProviderSpec`; a backend with `provider: <spec.name>` is served by the
    spec's factory. Two plugins registering the same name stop start-up with both names.
    """


@hookspec
def modelway_ingress_apis() -> list[IngressAPI]:
    """Register client-facing APIs (1:N, collected at start-up).

    Each `IngressAPI` matches method and path, decodes requests into the canonical form and
    encodes answers, streams and errors in its own wire shape (OpenAI, Anthropic, a provider's
    native API seen in forward mode). They are asked in registration order.
    """


@hookspec
def modelway_local_endpoints() -> list[LocalEndpoint]:
    """Register paths the gateway answers itself (1:N, collected at start-up).

    Admin pages, metrics, dashboards: each `LocalEndpoint` names its method and path (or path
    prefix), whether it needs an admin key, and an async handler returning a `LocalAnswer`.
    They are matched before the ingress APIs; two registrations of one path stop start-up.
    """


# --------------------------------------------------------------------------------------------
# Policy family: what may pass, and how requests and answers are changed on the way.
# --------------------------------------------------------------------------------------------


@hookspec
def modelway_policies() -> list[PolicySpec]:
    """Register policy types (1:N, collected at start-up).

    Routes enable a policy under `policies: {<spec.name>: {...}}`; that section is validated by
    `spec.config_model` and `spec.factory(config)` builds the `Policy`. Policies run in the
    order the route lists them, on the request, the complete answer and each stream chunk.
    """


@hookspec
def modelway_request_received(ctx: RequestContext) -> None:
    """A request was decoded and routed, before any policy (1:N, observation).

    `ctx.request` and `ctx.route` are set. Plugins may annotate `ctx.annotations` or edit
    `ctx.request.body`; to reject, write a Policy instead.
    """


# --------------------------------------------------------------------------------------------
# Routing family: which backends, in which order, and what came of each try.
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def modelway_plan(ctx: RequestContext, route: Route) -> Plan | None:
    """Build the ordered attempt plan for a routed request (firstresult).

    Return a `Plan` to decide, or None to let the next plugin decide. The built-in `router`
    plugin answers last: a weighted (optionally sticky) pick over the route's targets.
    """


@hookspec
def modelway_upstream_request(
    ctx: RequestContext, attempt: Attempt, request: UpstreamRequest
) -> None:
    """An attempt is about to be sent (1:N). Plugins may add headers to `request`."""


@hookspec
def modelway_attempt_result(ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome) -> None:
    """An attempt finished: answered, failed before answering, or broke mid-stream (1:N).

    Feeds health tracking and statistics; `outcome.retriable` says whether the gateway may
    move on to the next attempt.
    """


# --------------------------------------------------------------------------------------------
# Governance family: who is calling, and whether they may (keys, limits, budgets).
# Implementations may be coroutine functions (`async def`): the gateway awaits them in turn.
# --------------------------------------------------------------------------------------------


@hookspec
def modelway_authenticate(
    ctx: RequestContext,
) -> Principal | Awaitable[Principal | None] | None:
    """Identify the client of a request (1:N, awaited in order; the first Principal wins).

    Fires once the client's API is known (so errors are in its shape) and before the body is
    decoded, for every request but `/healthz`, `/readyz` and admin endpoints. Return a
    `Principal` (it becomes `ctx.principal`), None to let the next plugin decide, or raise
    `GatewayError(401, ...)` to refuse. When no plugin returns a Principal, the gateway's own
    `gateway.api_keys` check applies.
    """


@hookspec
def modelway_admit(ctx: RequestContext, attempt: Attempt | None) -> Awaitable[None] | None:
    """Let a request, or one attempt of it, through (1:N, every implementation awaited).

    Fires with `attempt` None once the request is routed (`ctx.route`, `ctx.call`,
    `ctx.principal` set), before the route's policies; and with `attempt` set just before each
    attempt is sent (per-backend limits). Raise a `GatewayError` to refuse (403 for a model
    the key may not use, 429 over a limit or budget, 503 when the state store is down and the
    limit fails closed); a refused attempt is skipped for the next one in the plan. What an
    implementation reserves it settles in `modelway_request_done`, where `ctx.usage` is final
    (streams included). Rate-limit headers go in `ctx.response_headers`.
    """


# --------------------------------------------------------------------------------------------
# Lifecycle family: start, stop, and the end of every request.
# --------------------------------------------------------------------------------------------


@hookspec
def modelway_configure(gateway: Gateway) -> None:
    """The configuration was loaded and validated (1:N), at start-up and on every reload.

    A plugin reads its own validated settings with `gateway.plugin_settings(<name>)`.
    Raising here stops start-up (or rejects the reload) with the plugin's name.
    """


@hookspec
def modelway_startup(gateway: Gateway) -> None:
    """The proxy is listening and the event loop runs (1:N). Start background tasks here."""


@hookspec
def modelway_shutdown(gateway: Gateway) -> None:
    """The gateway is stopping, after in-flight requests drained (1:N). Release resources."""


@hookspec
def modelway_request_done(ctx: RequestContext, record: dict[str, object]) -> None:
    """A request finished, answered or failed (1:N, observation).

    `record` is the access-log record (JSON-safe, no prompt text, no secrets). Plugins may
    add keys for the log line; the `access_log` plugin writes it.
    """
