"""Sends a planned request upstream: attempts in plan order until one answers.

Each attempt takes one of two lanes. When the backend speaks the client's wire API, the
client's own body goes upstream (the same-API lane, `Provider.build_native`); otherwise its
canonical translation does (`Provider.build_request`). A retriable outcome (connection
failure, timeout, 5xx, 429) moves on to the next attempt as long as nothing has reached the
client; the last error is what the client sees.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from modelway import hubfit, jsonx, timeouts
from modelway.canonical import CanonicalRequest, UpstreamRequest
from modelway.context import Attempt, AttemptOutcome, RequestContext
from modelway.errors import GatewayError, body_too_large
from modelway.extension import Provider, Transport, UpstreamResponse
from modelway.uploads import UploadBody
from modelway.upstream import AnswerTooLarge, UpstreamFailure, read_bounded

NATIVE = "native"
HUB = "hub"

UPSTREAM_HEADERS = (
    "x-ratelimit-",
    "anthropic-ratelimit-",
    "retry-after",
    "x-should-retry",
    "openai-processing-ms",
)
"""Upstream answer headers passed back to the client (prefixes): rate limits, retry hints."""

_REQUEST_IDS = {"x-request-id": "x-upstream-request-id", "request-id": "request-id"}
"""Upstream request-id headers: the gateway's own id is `x-request-id`."""


@dataclass(slots=True)
class Sent:
    """An attempt whose backend answered 2xx, its response still unread."""

    attempt: Attempt
    lane: str
    hub: CanonicalRequest | None
    """What went upstream on the hub lane (None on the same-API lane)."""
    response: UpstreamResponse
    deadline: float | None = None
    """The loop time at which this attempt's `total` timeout runs out."""


class _Retriable(Exception):
    def __init__(self, error: GatewayError) -> None:
        self.error = error


def upstream_request_for(request: CanonicalRequest, model: str) -> CanonicalRequest:
    """The canonical request as an attempt sends it: with the backend's model name."""
    if model == request.model:
        return request
    body = {**request.body, "model": model}
    return CanonicalRequest(
        request.operation, model, body, request.stream, request.client_wants_usage
    )


def attempt_model(ctx: RequestContext, attempt: Attempt) -> str:
    return attempt.model or attempt.backend.config.model or ctx.model or ""


def choose_lane(ctx: RequestContext, provider: Provider, model: str, force_hub: bool) -> str:
    call = ctx.call
    assert call is not None
    if force_hub or (call.stream and not provider.streams_natively(call.wire)):
        return HUB
    if call.wire in provider.native_wires(model):
        return NATIVE
    return HUB


async def open_upstream(
    ctx: RequestContext,
    transport: Transport,
    *,
    hub: CanonicalRequest | None = None,
    last: GatewayError | None = None,
) -> Sent:
    """The first attempt that answers 2xx. `hub` forces the hub lane with that request (a
    continuation mid-stream); attempts already made are skipped; `last` is the error of an
    earlier attempt, raised when no other is left."""
    assert ctx.plan is not None
    deadline = (
        None if ctx.plan.budget_seconds is None else ctx.timings.start + ctx.plan.budget_seconds
    )
    for attempt in ctx.plan.attempts[: ctx.plan.max_attempts]:
        if ctx.upload is not None and ctx.attempts:
            break  # an upload's body is read once: it cannot be sent again
        if any(tried is attempt for tried in ctx.attempts):
            continue
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            return await _try(ctx, transport, attempt, hub)
        except _Retriable as exc:
            last = exc.error
    raise last or GatewayError(
        503, "no backend is available for this route", "server_error", "no_backend"
    )


def _build(
    ctx: RequestContext, attempt: Attempt, hub: CanonicalRequest | None
) -> tuple[str, CanonicalRequest | None, UpstreamRequest]:
    provider = attempt.backend.provider
    model = attempt_model(ctx, attempt)
    force_hub = hub is not None or not attempt.backend.config.same_api
    force_hub = force_hub or _hub_for_continuation(ctx)
    lane = choose_lane(ctx, provider, model, force_hub)
    if lane == NATIVE:
        assert ctx.call is not None
        return lane, None, provider.build_native(ctx, ctx.call, model)
    request = hubfit.fit(ctx, attempt, upstream_request_for(hub or ctx.hub(), model))
    return lane, request, provider.build_request(ctx, request)


def _hub_for_continuation(ctx: RequestContext) -> bool:
    """Streams on a route that continues broken streams take the hub lane, except on wires
    whose same-API stream can hand over to a translated one (OpenAI chat)."""
    failover = ctx.route.config.failover if ctx.route else None
    if not (ctx.streaming and failover and failover.continue_streams):
        return False
    return not (ctx.wire is not None and getattr(ctx.wire, "continuable", False))


async def _try(
    ctx: RequestContext, transport: Transport, attempt: Attempt, hub: CanonicalRequest | None
) -> Sent:
    backend = attempt.backend
    try:
        lane, request, wire = _build(ctx, attempt, hub)
    except GatewayError as refused:  # a feature this backend cannot take: a later one may
        if refused.code == hubfit.UNSUPPORTED:
            raise _Retriable(refused) from None
        raise
    assert ctx.gateway is not None
    try:
        await ctx.gateway.hooks.admit(ctx, attempt)
    except GatewayError as refused:  # this backend is at its limit: the next may not be
        raise _Retriable(refused) from None
    if ctx.upload is not None:
        _stream_upload(ctx, ctx.upload, wire)
    ctx.gateway.hooks.upstream_request(ctx, attempt, wire)
    ctx.attempts.append(attempt)
    ctx.lane = lane
    ctx.upstream_model = request.model if request else attempt_model(ctx, attempt)
    started = time.monotonic()
    ctx.timings.upstream_start = ctx.timings.upstream_start or started
    limits = timeouts.resolve(
        ctx.gateway.config.gateway, backend.config, ctx.route.config if ctx.route else None
    )
    wire.connect_timeout = limits.connect or 0.0
    wire.timeout = limits.idle or 0.0
    deadline = timeouts.deadline_of(limits.total)
    try:
        response = await _send(
            backend.provider.transport or transport, wire, ctx.streaming, limits, deadline
        )
    except UpstreamFailure as exc:
        if ctx.upload is not None and ctx.upload.over:  # the client's fault, not the backend's
            raise body_too_large(ctx.upload.limit) from None
        retriable = _triggered(ctx, exc.kind)
        _report(ctx, attempt, AttemptOutcome(False, None, exc.kind, retriable), started)
        error = exc.as_error(backend.name)
        if retriable:
            raise _Retriable(error) from exc
        raise error from exc
    ctx.upstream_headers = passed_headers(response.headers)
    ctx.upstream_headers.update(backend.provider.answer_headers(ctx, response.headers))
    if response.status < 400:
        _report(ctx, attempt, AttemptOutcome(True, response.status), started)
        return Sent(attempt, lane, request, response, deadline)
    limit = ctx.gateway.config.gateway.max_answer_bytes
    error = await _error_from(backend.provider, response, backend.name, lane, limit)
    trigger = "429" if response.status == 429 else ("5xx" if response.status >= 500 else None)
    retriable = trigger is not None and _triggered(ctx, trigger)
    outcome = AttemptOutcome(
        False, response.status, f"http_{response.status}", retriable, _retry_after(response)
    )
    _report(ctx, attempt, outcome, started)
    if retriable:
        raise _Retriable(error)
    raise error


def _stream_upload(ctx: RequestContext, upload: UploadBody, wire: UpstreamRequest) -> None:
    wire.body, wire.stream = b"", upload.chunks()
    length = ctx.headers.get("content-length", "")
    if length.isdigit():
        wire.headers["content-length"] = length


def passed_headers(headers: object) -> dict[str, str]:
    """The upstream answer headers the client gets too (rate limits, retry hints, its id)."""
    out: dict[str, str] = {}
    items = headers.items() if hasattr(headers, "items") else ()
    for name, value in items:
        lower = name.lower()
        if lower in _REQUEST_IDS:
            out[_REQUEST_IDS[lower]] = value
        elif lower.startswith(UPSTREAM_HEADERS):
            out[lower] = value
    return out


# Transport failure kinds (see modelway.upstream.classify) as failover triggers.
_FAILURE_TRIGGER = {
    "connect": "connect",
    "dns": "dns",
    "tls": "tls",
    "connect_timeout": "connect_timeout",
    "timeout": "timeout",
    "total": "timeout",
    "slow": "slow",
    "idle": "timeout",
    "disconnect": "disconnect",
}


def _triggered(ctx: RequestContext, trigger: str) -> bool:
    """Whether this kind of failure moves on to the next attempt on this route."""
    trigger = _FAILURE_TRIGGER.get(trigger, trigger if trigger in ("5xx", "429") else "disconnect")
    failover = ctx.route.config.failover if ctx.route else None
    return failover is None or trigger in failover.retry_on


async def _send(
    transport: Transport,
    wire: UpstreamRequest,
    stream: bool,
    limits: timeouts.Timeouts,
    deadline: float | None,
) -> UpstreamResponse:
    """Send, bounded by the attempt's first-byte and total timeouts."""
    first_byte = limits.first_byte
    if first_byte is not None and (limits.total is None or first_byte < limits.total):
        try:
            return await asyncio.wait_for(transport.send(wire, stream=stream), first_byte)
        except TimeoutError:
            raise UpstreamFailure(
                "slow", 504, f"the backend did not start answering within {first_byte:g}s"
            ) from None
    async with timeouts.before(deadline):
        return await transport.send(wire, stream=stream)


def read_failed(ctx: RequestContext, sent: Sent, failure: UpstreamFailure) -> GatewayError:
    """A whole answer broke off while it was read (nothing reached the client yet): the
    attempt failed. Its error is returned when the route's triggers let the next attempt
    be tried, else raised."""
    retriable = _triggered(ctx, failure.kind)
    outcome = AttemptOutcome(False, sent.response.status, failure.kind, retriable)
    _report(ctx, sent.attempt, outcome, time.monotonic())
    error = failure.as_error(sent.attempt.backend.name)
    if not retriable:
        raise error from failure
    return error


async def _error_from(
    provider: Provider, response: UpstreamResponse, backend: str, lane: str, limit: int
) -> GatewayError:
    try:
        body = await read_bounded(response, limit)
    except AnswerTooLarge:
        body = b""
    except UpstreamFailure as exc:
        return exc.as_error(backend)
    finally:
        response.release()
    error = provider.parse_error(response.status, response.headers, body)
    retry_after = response.headers.get("retry-after")
    if retry_after:
        error.headers.setdefault("retry-after", retry_after)
    if lane == NATIVE and error.status == response.status and _is_error_body(body):
        # The backend speaks the client's API: its own error body is the faithful answer.
        error.native_body = body
        error.native_content_type = response.headers.get("content-type", "application/json")
    return error


def _is_error_body(body: bytes) -> bool:
    """Whether a body is an API error object (all three APIs have an `error` key); anything
    else (an HTML page of a proxy in between) gets the gateway's own error instead."""
    try:
        data = jsonx.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and "error" in data


def _retry_after(response: UpstreamResponse) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _report(ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome, started: float) -> None:
    outcome.latency_ms = round((time.monotonic() - started) * 1000, 2)
    attempt.outcome = outcome
    assert ctx.gateway is not None
    ctx.gateway.hooks.attempt_result(ctx, attempt, outcome)
