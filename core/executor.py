"""Sends a planned request upstream: attempts in plan order until one answers.

A retriable outcome (connection failure, timeout, 5xx, 429) moves on to the next attempt as
long as nothing has reached the client; the last error is what the client sees.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from modelway.canonical import CanonicalRequest, CanonicalResponse, UpstreamRequest
from modelway.context import Attempt, AttemptOutcome, RequestContext
from modelway.errors import GatewayError
from modelway.extension import Provider, Transport, UpstreamResponse
from modelway.upstream import UpstreamFailure

if TYPE_CHECKING:
    from modelway.runtime import Gateway


def upstream_request_for(request: CanonicalRequest, attempt: Attempt) -> CanonicalRequest:
    """The request as this attempt sends it: the model name the backend should see."""
    model = attempt.model or attempt.backend.config.model or request.model
    if model == request.model:
        return request
    body = {**request.body, "model": model}
    return CanonicalRequest(
        request.operation, model, body, request.stream, request.client_wants_usage
    )


async def open_upstream(
    gateway: Gateway, transport: Transport, ctx: RequestContext
) -> tuple[Attempt, CanonicalRequest, UpstreamResponse]:
    """The first attempt that answers 2xx, with its response still unread."""
    assert ctx.plan is not None and ctx.request is not None
    last: GatewayError | None = None
    deadline = _deadline(ctx)
    for attempt in ctx.plan.attempts[: ctx.plan.max_attempts]:
        if any(tried is attempt for tried in ctx.attempts):
            continue  # a continuation mid-stream moves on to the attempts not yet made
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            request, response = await _try(gateway, transport, ctx, attempt)
        except _Retriable as exc:
            last = exc.error
            continue
        return attempt, request, response
    raise last or GatewayError(
        503, "no backend is available for this route", "server_error", "no_backend"
    )


class _Retriable(Exception):
    def __init__(self, error: GatewayError) -> None:
        self.error = error


async def _try(
    gateway: Gateway, transport: Transport, ctx: RequestContext, attempt: Attempt
) -> tuple[CanonicalRequest, UpstreamResponse]:
    assert ctx.request is not None
    backend = attempt.backend
    request = upstream_request_for(ctx.request, attempt)
    wire = backend.provider.build_request(ctx, request)
    gateway.hooks.upstream_request(ctx, attempt, wire)
    ctx.attempts.append(attempt)
    ctx.upstream_model = request.model
    started = time.monotonic()
    ctx.timings.upstream_start = ctx.timings.upstream_start or started
    try:
        response = await _send(ctx, backend.provider.transport or transport, wire, request.stream)
    except UpstreamFailure as exc:
        retriable = _triggered(ctx, _FAILURE_TRIGGER.get(exc.kind, "disconnect"))
        _report(gateway, ctx, attempt, AttemptOutcome(False, None, exc.kind, retriable), started)
        error = exc.as_error(backend.name)
        if retriable:
            raise _Retriable(error) from exc
        raise error from exc
    if response.status < 400:
        _report(gateway, ctx, attempt, AttemptOutcome(True, response.status), started)
        return request, response
    error = await _error_from(backend.provider, response, backend.name)
    trigger = "429" if response.status == 429 else ("5xx" if response.status >= 500 else None)
    retriable = trigger is not None and _triggered(ctx, trigger)
    outcome = AttemptOutcome(
        False, response.status, f"http_{response.status}", retriable, _retry_after(response)
    )
    _report(gateway, ctx, attempt, outcome, started)
    if retriable:
        raise _Retriable(error)
    raise error


# Transport failure kinds (see modelway.upstream.classify) as failover triggers.
_FAILURE_TRIGGER = {
    "connect": "connect",
    "dns": "dns",
    "tls": "tls",
    "connect_timeout": "connect_timeout",
    "timeout": "timeout",
    "slow": "slow",
    "disconnect": "disconnect",
}


def _triggered(ctx: RequestContext, trigger: str) -> bool:
    """Whether this kind of failure moves on to the next attempt on this route."""
    failover = ctx.route.config.failover if ctx.route else None
    return failover is None or trigger in failover.retry_on


async def _send(
    ctx: RequestContext, transport: Transport, wire: UpstreamRequest, stream: bool
) -> UpstreamResponse:
    """Send, bounded by the route's time-to-first-byte limit when it has one."""
    failover = ctx.route.config.failover if ctx.route else None
    limit = failover.first_byte_timeout_seconds if failover else None
    if limit is None:
        return await transport.send(wire, stream=stream)
    try:
        return await asyncio.wait_for(transport.send(wire, stream=stream), limit)
    except TimeoutError:
        raise UpstreamFailure(
            "slow", 504, f"the backend did not start answering within {limit:g}s"
        ) from None


async def _error_from(provider: Provider, response: UpstreamResponse, backend: str) -> GatewayError:
    try:
        body = await response.read()
    except UpstreamFailure as exc:
        return exc.as_error(backend)
    finally:
        response.release()
    error = provider.parse_error(response.status, response.headers, body)
    retry_after = response.headers.get("retry-after")
    if retry_after:
        error.headers.setdefault("retry-after", retry_after)
    return error


def _retry_after(response: UpstreamResponse) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _report(
    gateway: Gateway, ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome, started: float
) -> None:
    outcome.latency_ms = round((time.monotonic() - started) * 1000, 2)
    attempt.outcome = outcome
    gateway.hooks.attempt_result(ctx, attempt, outcome)


def _deadline(ctx: RequestContext) -> float | None:
    assert ctx.plan is not None
    budget = ctx.plan.budget_seconds
    return None if budget is None else ctx.timings.start + budget


async def complete(
    gateway: Gateway, transport: Transport, ctx: RequestContext
) -> CanonicalResponse:
    """Run a non-streamed request to the end: upstream answer, decoded and policy-checked."""
    attempt, request, response = await open_upstream(gateway, transport, ctx)
    try:
        body = await response.read()
    except UpstreamFailure as exc:
        raise exc.as_error(attempt.backend.name) from exc
    finally:
        response.release()
    ctx.timings.first_byte = time.monotonic()
    ctx.served_by = attempt
    result = attempt.backend.provider.parse_response(ctx, request, response.status, body)
    ctx.usage = result.usage
    for policy in ctx.route.policies if ctx.route else ():
        decision = await policy.on_response(ctx, result)
        if decision is not None and not decision.allowed:
            raise decision.as_error()
    return result
