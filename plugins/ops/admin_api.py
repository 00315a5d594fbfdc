"""Built-in plugin `admin_api`: the gateway's own admin endpoints under `/modelway/`.

- `GET /modelway/stats`: per-route, per-variant statistics (plugin `stats`): with a shared
  state store, summed over every process on it (`scope: "shared"`).
- `DELETE /modelway/stats`: start the statistics afresh (the shared ones too).
- `GET /modelway/health`: backends out of service, with the time left (plugin `health`).
- `POST /modelway/reload`: reload the configuration file (the running server's
  `ReloadService`). 200 `{"reloaded": true}`; 409 when the new configuration is invalid; 503
  when reloading is not available or fails.

These are admin endpoints (`LocalEndpoint(admin=True)`): they need a key of
`gateway.admin_keys` (or, without admin keys, of `gateway.api_keys`); with no keys at all
they are served on a loopback listener only. Errors are in OpenAI's shape.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from modelway import hookimpl, jsonx
from modelway.errors import ConfigError, GatewayError
from modelway.ingress import LocalAnswer, LocalEndpoint
from modelway.services import HealthService, ReloadService, StatsService
from modelway.state import StateUnavailable

if TYPE_CHECKING:
    from modelway.context import RequestContext

logger = logging.getLogger("modelway.admin")


def _json(status: int, value: Any) -> LocalAnswer:
    return LocalAnswer(status, jsonx.dumps(value))


def _not_enabled(plugin: str) -> GatewayError:
    return GatewayError(
        404,
        f"the '{plugin}' plugin is not enabled on this gateway",
        "invalid_request_error",
        "plugin_not_enabled",
    )


def _reload_failed(exc: Exception) -> GatewayError:
    if isinstance(exc, ConfigError):
        # Config errors name file, YAML path and problem, never a substituted value.
        return GatewayError(
            409,
            f"the new configuration was rejected: {exc}",
            "invalid_request_error",
            "config_invalid",
        )
    logger.error("configuration reload failed (%s)", type(exc).__name__)
    return GatewayError(
        503, f"the reload failed ({type(exc).__name__})", "server_error", "reload_failed"
    )


def _service(ctx: RequestContext, kind: type[Any], plugin: str) -> Any:
    gateway = ctx.gateway
    assert gateway is not None
    found = gateway.services.get(kind)
    if found is None or plugin not in gateway.plugin_names:
        raise _not_enabled(plugin)
    return found


async def stats(ctx: RequestContext) -> LocalAnswer:
    return _json(200, await _service(ctx, StatsService, "stats").collect())


async def stats_reset(ctx: RequestContext) -> LocalAnswer:
    try:
        await _service(ctx, StatsService, "stats").clear()
    except StateUnavailable:
        raise GatewayError(
            503, "the state store cannot be reached: nothing was reset",
            "server_error", "state_unavailable",
        ) from None  # fmt: skip
    return _json(200, {"reset": True})


async def health(ctx: RequestContext) -> LocalAnswer:
    return _json(200, _service(ctx, HealthService, "health").snapshot())


async def reload(ctx: RequestContext) -> LocalAnswer:
    assert ctx.gateway is not None
    service = ctx.gateway.services.get(ReloadService)
    if service is None:
        raise GatewayError(
            503, "reloading is not available on this gateway", "server_error", "reload_unavailable"
        )
    try:
        await service.reload()
    except Exception as exc:
        raise _reload_failed(exc) from None
    return _json(200, {"reloaded": True})


@hookimpl
def modelway_local_endpoints() -> list[LocalEndpoint]:
    return [
        LocalEndpoint("GET", "/modelway/stats", stats, "admin.stats", admin=True),
        LocalEndpoint("DELETE", "/modelway/stats", stats_reset, "admin.stats.reset", admin=True),
        LocalEndpoint("GET", "/modelway/health", health, "admin.health", admin=True),
        LocalEndpoint("POST", "/modelway/reload", reload, "admin.reload", admin=True),
    ]
