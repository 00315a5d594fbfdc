"""Built-in plugin `admin_api`: the gateway's own admin endpoints under `/modelway/`.

- `GET /modelway/stats`: per-route, per-variant statistics (plugin `stats`).
- `DELETE /modelway/stats`: start the statistics afresh.
- `GET /modelway/health`: backends out of service, with the time left (plugin `health`).
- `POST /modelway/reload`: reload the configuration through the callable the gateway
  registered at `gateway.shared["reload"]` (plain or async). 200 `{"reloaded": true}`;
  409 when the new configuration is invalid; 503 when reloading is not available or fails.

Every endpoint is local (answered by the gateway itself). When `gateway.api_keys` is set the
engine checks the client's key before any local answer, so the admin API needs a key too.
Errors are in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.errors import ConfigError, GatewayError
from modelway.extension import Endpoint, IngressAPI, LocalAnswer, StreamEncoder
from modelway.plugins.ingress.openai import error_object
from modelway.plugins.ops.stats import StatsBoard
from modelway.plugins.traffic.health import HealthBoard
from modelway.providerkit import dumps

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway

logger = logging.getLogger("modelway.admin")

API = "admin"
PREFIX = "/modelway/"
STATS = Endpoint(API, Operation.MODELS, "admin.stats", local=True)
STATS_RESET = Endpoint(API, Operation.MODELS, "admin.stats.reset", local=True)
HEALTH = Endpoint(API, Operation.MODELS, "admin.health", local=True)
RELOAD = Endpoint(API, Operation.MODELS, "admin.reload", local=True)

_ROUTES = {
    ("GET", "/modelway/stats"): STATS,
    ("DELETE", "/modelway/stats"): STATS_RESET,
    ("GET", "/modelway/health"): HEALTH,
    ("POST", "/modelway/reload"): RELOAD,
}
_PATHS = frozenset(path for _, path in _ROUTES)


def _json(status: int, value: Any) -> LocalAnswer:
    return LocalAnswer(status, dumps(value))


def _not_enabled(plugin: str) -> GatewayError:
    return GatewayError(
        404,
        f"the '{plugin}' plugin is not enabled on this gateway",
        "invalid_request_error",
        "plugin_not_enabled",
    )


def _reload_unavailable() -> GatewayError:
    return GatewayError(
        503,
        "reloading is not available on this gateway",
        "server_error",
        "reload_unavailable",
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
    logger.exception("configuration reload failed")
    return GatewayError(
        503, f"the reload failed ({type(exc).__name__})", "server_error", "reload_failed"
    )


def _reloaded(result: object) -> LocalAnswer:
    body: dict[str, Any] = dict(result) if isinstance(result, Mapping) else {}
    body["reloaded"] = True
    return _json(200, body)


class AdminAPI(IngressAPI):
    """Local admin endpoints; they never reach a backend."""

    name = API
    paths = ("/modelway/stats", "/modelway/health", "/modelway/reload")

    def match(self, method: str, path: str) -> Endpoint | None:
        return _ROUTES.get((method, path.rstrip("/")))

    def claims(self, path: str) -> bool:
        return path.rstrip("/") in _PATHS

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> CanonicalRequest:
        raise GatewayError(404, f"{endpoint.name} takes no model request", code="not_found")

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        return dumps(response.body)

    def stream_encoder(self, ctx: RequestContext) -> StreamEncoder:
        raise GatewayError(404, "the admin API does not stream", code="not_found")

    def error_body(self, error: GatewayError) -> bytes:
        return dumps(error_object(error))

    # ------------------------------------------------------------------------- answers

    def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        if endpoint is RELOAD:
            return self._reload_now(gateway)
        return self._view(endpoint, gateway)

    async def local_answer_async(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        """As `local_answer`, but an async reload callable is awaited to its end."""
        if endpoint is not RELOAD:
            return self._view(endpoint, gateway)
        reload = gateway.shared.get("reload")
        if not callable(reload):
            raise _reload_unavailable()
        try:
            result = reload()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            raise _reload_failed(exc) from None
        return _reloaded(result)

    def _view(self, endpoint: Endpoint, gateway: Gateway) -> LocalAnswer:
        if endpoint is HEALTH:
            health = gateway.shared.get("health")
            if not isinstance(health, HealthBoard) or "health" not in gateway.plugin_names:
                raise _not_enabled("health")
            return _json(200, health.snapshot())
        stats = gateway.shared.get("stats")
        if not isinstance(stats, StatsBoard) or "stats" not in gateway.plugin_names:
            raise _not_enabled("stats")
        if endpoint is STATS_RESET:
            stats.reset()
            return _json(200, {"reset": True})
        return _json(200, stats.snapshot())

    def _reload_now(self, gateway: Gateway) -> LocalAnswer:
        """A plain reload callable runs here; an async one is started and answered 202."""
        reload = gateway.shared.get("reload")
        if not callable(reload):
            raise _reload_unavailable()
        try:
            result = reload()
        except Exception as exc:
            raise _reload_failed(exc) from None
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(_finish(result))
            _PENDING.add(task)
            task.add_done_callback(_PENDING.discard)
            return _json(202, {"reloaded": False, "started": True})
        return _reloaded(result)


_PENDING: set[asyncio.Future[None]] = set()


async def _finish(result: Awaitable[object]) -> None:
    try:
        await result
    except Exception:
        logger.exception("configuration reload failed")


@hookimpl
def modelway_ingress_apis() -> list[IngressAPI]:
    return [AdminAPI()]
