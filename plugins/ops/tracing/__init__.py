"""Built-in plugin `tracing`: OpenTelemetry spans of every request (opt-in, `modelway[otel]`).

    plugins:
      tracing:
        endpoint: http://collector:4318/v1/traces   # else OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT
        headers: {authorization: "Bearer ${OTEL_TOKEN}"}
        service_name: modelway                      # else OTEL_SERVICE_NAME
        sample_ratio: 1.0                           # else OTEL_TRACES_SAMPLER(_ARG)
        capture_content: false                      # prompt texts as gen_ai.input.messages

One SERVER span per routed request (`chat gpt-4o`), with a CLIENT child span per upstream
attempt, and one for each request refused before routing (401, 404, 400 ...). OpenTelemetry's
gen_ai attributes (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
`gen_ai.response.model`, `gen_ai.usage.input_tokens` ...), the guards' decisions
(`modelway.guard`) and failover hops (`modelway.failover`) as span events. No prompt or answer
text unless `capture_content` is set. The client's W3C `traceparent` (and `tracestate`) is the
request span's parent, and each attempt sends its own `traceparent` upstream.

Spans are lean records (`spans.py`) given to the SDK's `BatchSpanProcessor` when they end;
its thread exports them through `exporter.py` (OTLP/HTTP, protobuf written by `otlp.py`), so
the event loop only queues finished spans. The standard `OTEL_*` variables apply (resource
attributes, sampler, batch sizes, the exporter's endpoint, headers, timeout, compression).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from modelway import __version__ as VERSION
from modelway import hookimpl, jsonx
from modelway.errors import ConfigError
from modelway.plugins.ops.metrics.labels import PROVIDER_NAMES, operation_of

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from modelway.canonical import UpstreamRequest
    from modelway.context import Attempt, AttemptOutcome, RequestContext
    from modelway.plugins.ops.tracing.spans import OpenSpan, SpanMaker
    from modelway.runtime import Gateway

NAME = "tracing"
STATE = "tracing"
SETTINGS = ("temperature", "top_p", "max_tokens")


class Settings(BaseModel):
    """`plugins: {tracing: {...}}`."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str | None = None
    """The OTLP/HTTP traces URL; unset: the OTEL_EXPORTER_OTLP_* variables, else localhost."""
    headers: dict[str, str] = Field(default_factory=dict)
    service_name: str | None = None
    sample_ratio: float | None = Field(None, ge=0, le=1)
    """Parent-based ratio sampling; unset: OTEL_TRACES_SAMPLER, else every trace."""
    capture_content: bool = False
    """Record the prompt's texts (`gen_ai.input.messages`): off by default, they may be PII."""
    export_interval_seconds: float | None = Field(None, gt=0)
    """How often the batch processor exports; unset: OTEL_BSP_SCHEDULE_DELAY (5 s)."""


@dataclass(slots=True)
class Trace:
    """One request's open spans."""

    span: OpenSpan
    recording: bool
    """False when the trace is not sampled: nothing is recorded, only `traceparent` passed."""
    attempts: dict[int, OpenSpan] = field(default_factory=dict)


def epoch_ns(moment: float) -> int:
    """A monotonic timestamp as wall-clock nanoseconds (what spans carry)."""
    return time.time_ns() - int((time.monotonic() - moment) * 1e9)


def _spans(settings: Settings) -> tuple[TracerProvider, SpanMaker]:
    """The SDK's provider (resource, sampler, batching, all `OTEL_*`-configurable) exporting
    through modelway's OTLP/HTTP exporter, and the maker of the plugin's lean spans."""
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        from modelway.plugins.ops.tracing.exporter import OtlpHttpExporter
        from modelway.plugins.ops.tracing.spans import SpanMaker
    except ImportError:
        raise ConfigError(
            "plugin 'tracing' needs OpenTelemetry: pip install 'modelway[otel]'"
        ) from None
    attributes = {SERVICE_NAME: settings.service_name} if settings.service_name else {}
    resource = Resource.create(attributes)
    named = str(resource.attributes.get(SERVICE_NAME) or "")
    if not settings.service_name and named.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "modelway"}))
    sampler = None
    if settings.sample_ratio is not None:
        sampler = ParentBased(TraceIdRatioBased(settings.sample_ratio))
    provider = TracerProvider(resource=resource, sampler=sampler)
    exporter = OtlpHttpExporter(settings.endpoint, settings.headers or None)
    delay = settings.export_interval_seconds
    millis = None if delay is None else delay * 1000
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=millis)
    provider.add_span_processor(processor)
    return provider, SpanMaker(provider, processor, InstrumentationScope("modelway", VERSION))


class TracingPlugin:
    """Opens, annotates and ends the spans of each request."""

    Settings = Settings

    def __init__(self) -> None:
        self.settings = Settings()
        self.provider: TracerProvider | None = None
        self.spans: SpanMaker | None = None

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.settings = gateway.plugin_settings(NAME) or Settings()
        self.provider, self.spans = _spans(self.settings)
        self.propagator = TraceContextTextMapPropagator()

    @hookimpl
    def modelway_shutdown(self, gateway: Gateway) -> None:
        provider, self.provider = self.provider, None
        if provider is not None:  # flushing waits on the network: not on the event loop
            threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True).start()

    @hookimpl
    def modelway_request_received(self, ctx: RequestContext) -> None:
        if self.spans is not None:
            span = self._request_span(ctx)
            ctx.plugin_state[STATE] = Trace(span, span.is_recording())

    @hookimpl
    def modelway_upstream_request(
        self, ctx: RequestContext, attempt: Attempt, request: UpstreamRequest
    ) -> None:
        trace: Trace | None = ctx.plugin_state.get(STATE)
        if trace is None or self.spans is None:
            return
        if not trace.recording:  # not sampled: the upstream learns it, no span is made
            request.headers["traceparent"] = traceparent(trace.span)
            return
        from opentelemetry.trace import SpanKind

        model = attempt.model or attempt.backend.config.model or ctx.model or ""
        span = self.spans.start(
            f"{operation_of(ctx)} {model}".strip(),
            SpanKind.CLIENT,
            trace.span.get_span_context(),
            {
                "gen_ai.operation.name": operation_of(ctx),
                "gen_ai.provider.name": _provider_name(attempt.backend.provider_name),
                "gen_ai.request.model": model,
                "modelway.backend": attempt.backend.name,
                "modelway.variant": attempt.variant or "",
                "http.request.method": request.method,
            },
        )
        trace.attempts[id(attempt)] = span
        request.headers["traceparent"] = traceparent(span)
        state = span.get_span_context().trace_state
        if state:
            request.headers["tracestate"] = state.to_header()

    @hookimpl
    def modelway_attempt_result(
        self, ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome
    ) -> None:
        trace: Trace | None = ctx.plugin_state.get(STATE)
        span = trace.attempts.get(id(attempt)) if trace is not None else None
        if trace is None or span is None:
            return
        if outcome.ok:
            if outcome.status is not None:
                span.set_attribute("http.response.status_code", outcome.status)
            return  # ends with the answer (a stream's last byte)
        from opentelemetry.trace import Status, StatusCode

        failed: dict[str, Any] = {"error.type": outcome.error or "error"}
        if outcome.status is not None:
            failed["http.response.status_code"] = outcome.status
        span.set_attributes(failed)
        span.set_status(Status(StatusCode.ERROR))
        if self.spans is not None:
            self.spans.end(span)
        del trace.attempts[id(attempt)]
        if outcome.retriable:
            hop = {
                "modelway.backend": attempt.backend.name,
                "modelway.trigger": outcome.error or "",
            }
            trace.span.add_event("modelway.failover", hop)

    @hookimpl
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        trace: Trace | None = ctx.plugin_state.pop(STATE, None)
        if trace is None and self.spans is not None and (ctx.status or 0) >= 400:
            trace = Trace(span := self._request_span(ctx), span.recording)  # refused unrouted
        if trace is None or not trace.recording or self.spans is None:
            return
        end = epoch_ns(ctx.timings.end or time.monotonic())
        upstream_end = ctx.timings.upstream_end
        for span in trace.attempts.values():
            self.spans.end(span, epoch_ns(upstream_end) if upstream_end else end)
        _finish(trace.span, ctx, record)
        self.spans.end(trace.span, end)

    def _request_span(self, ctx: RequestContext) -> OpenSpan:
        from opentelemetry.trace import SpanKind, get_current_span

        assert self.spans is not None
        parent = None
        if "traceparent" in ctx.headers:
            parent = get_current_span(self.propagator.extract(ctx.headers)).get_span_context()
        operation = operation_of(ctx)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": ctx.model or "",
            "http.request.method": ctx.method,
            "url.path": ctx.path,
            "modelway.request_id": ctx.id,
            "modelway.route": ctx.route.name if ctx.route else "",
            "modelway.api": ctx.api.name if ctx.api else "",
            "gen_ai.request.stream": ctx.streaming,
        }
        name = ctx.method if operation == "other" else f"{operation} {ctx.model or ''}".strip()
        span = self.spans.start(name, SpanKind.SERVER, parent, attributes,
                                epoch_ns(ctx.timings.start))  # fmt: skip
        if span.recording and ctx.call is not None and ctx.call.view is not None:
            attributes.update(_request_settings(ctx))
            if self.settings.capture_content:
                texts = [{"role": s.role, "kind": s.kind, "content": s.text}
                         for s in ctx.view.segments()]  # fmt: skip
                attributes["gen_ai.input.messages"] = jsonx.dumps(texts).decode()
        return span


def traceparent(span: OpenSpan) -> str:
    """The W3C `traceparent` naming `span` as the parent (what the propagator writes)."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


def _request_settings(ctx: RequestContext) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in SETTINGS:
        value = ctx.view.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[f"gen_ai.request.{name}"] = value
    return found


def _finish(span: OpenSpan, ctx: RequestContext, record: dict[str, object]) -> None:
    """The answer's attributes (set at once: one lock), the guards' decisions, the status."""
    from opentelemetry.trace import Status, StatusCode

    attributes: dict[str, Any] = {}
    served = ctx.served_by
    if served is not None:
        attributes["gen_ai.provider.name"] = _provider_name(served.backend.provider_name)
        attributes["modelway.backend"] = served.backend.name
        attributes["gen_ai.response.model"] = ctx.upstream_model or ""
    if ctx.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = ctx.usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = ctx.usage.completion_tokens
    for key, name in (("cost_usd", "modelway.cost_usd"), ("ttft_ms", "modelway.ttft_ms")):
        value = record.get(key)
        if isinstance(value, float | int):
            attributes[name] = value
    if ctx.status is not None:
        attributes["http.response.status_code"] = ctx.status
    failed = ctx.error is not None or (ctx.status or 0) >= 500
    if failed:
        error = ctx.error.code or ctx.error.type if ctx.error is not None else "http_error"
        attributes["error.type"] = error or "error"
    span.set_attributes(attributes)
    for entry in ctx.annotations.get("guards") or ():
        if isinstance(entry, dict):
            span.add_event("modelway.guard", _guard_event(entry))
    if failed:
        span.set_status(Status(StatusCode.ERROR))


def _guard_event(entry: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {
        f"modelway.guard.{k}": str(entry.get(k, "")) for k in ("guard", "stage", "action")
    }
    for key in ("entities", "categories"):
        found = entry.get(key)
        if isinstance(found, dict) and found:
            event["modelway.guard.entity_types"] = sorted(str(name) for name in found)
    return event
