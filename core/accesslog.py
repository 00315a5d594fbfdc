"""The access-log record of one request: what happened, never what was said, never a secret.

Fields that come from the client are bounded: the path is cut at `MAX_PATH` characters, and
a model name is logged only when the configuration names it (a route's exact model, a
backend's or a target's model) or a route's glob with a fixed part (`gpt-*`, not `*`)
matches it, within `MAX_MODEL` characters; any other name is logged as `unknown` (a client
may put anything there, a card number included).
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from modelway.context import RequestContext
from modelway.routes import is_glob

MAX_PATH = 256
MAX_MODEL = 128
UNKNOWN = "unknown"


def access_record(ctx: RequestContext) -> dict[str, Any]:
    timings = ctx.timings
    served = ctx.served_by or (ctx.attempts[-1] if ctx.attempts else None)
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "request_id": ctx.id,
        "method": ctx.method,
        "path": bounded(ctx.path, MAX_PATH),
        "api": ctx.api.name if ctx.api else None,
        "route": ctx.route.name if ctx.route else None,
        "backend": served.backend.name if served else None,
        "provider": served.backend.provider_name if served else None,
        "variant": served.variant if served else None,
        "model": loggable_model(ctx, ctx.model),
        "upstream_model": loggable_model(ctx, ctx.upstream_model),
        "status": ctx.status,
        "latency_ms": timings.since_start_ms(timings.end),
        "ttft_ms": timings.since_start_ms(timings.first_byte) if ctx.streaming else None,
        "stream": ctx.streaming,
        "prompt_tokens": ctx.usage.prompt_tokens if ctx.usage else None,
        "completion_tokens": ctx.usage.completion_tokens if ctx.usage else None,
        "attempts": len(ctx.attempts),
        "client": ctx.client.identity,
    }
    if ctx.error is not None:
        record["error"] = ctx.error.code or ctx.error.type
    if ctx.annotations:
        record["extra"] = ctx.annotations
    return record


def bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "...(cut)"


def loggable_model(ctx: RequestContext, model: str | None) -> str | None:
    """`model` when the configuration knows it, else `unknown`."""
    if not model:
        return model
    gateway = ctx.gateway
    if gateway is None or len(model) > MAX_MODEL:
        return UNKNOWN
    for backend in gateway.backends.values():
        if backend.config.model == model:
            return model
    for route in gateway.routes:
        if model in route.exact_models or any(t.model == model for t in route.targets):
            return model
        for glob in route.config.match.models:
            if is_glob(glob) and glob.strip("*?") and fnmatch.fnmatchcase(model, glob):
                return model
    return UNKNOWN
