"""The access-log record of one request: what happened, never what was said, never a secret."""

from __future__ import annotations

import time
from typing import Any

from modelway.context import RequestContext


def access_record(ctx: RequestContext) -> dict[str, Any]:
    timings = ctx.timings
    served = ctx.served_by or (ctx.attempts[-1] if ctx.attempts else None)
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "request_id": ctx.id,
        "method": ctx.method,
        "path": ctx.path,
        "api": ctx.api.name if ctx.api else None,
        "route": ctx.route.name if ctx.route else None,
        "backend": served.backend.name if served else None,
        "provider": served.backend.provider_name if served else None,
        "variant": served.variant if served else None,
        "model": ctx.model,
        "upstream_model": ctx.upstream_model,
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
