"""Lean spans: what the `tracing` plugin records per request, handed to the SDK once ended.

The SDK's `Span` takes a lock and validates every attribute on each call (about 60 us for a
request's two spans, on the event loop). The plugin's attributes are its own, already of
OpenTelemetry's types, so `OpenSpan` is a plain record with the same few methods; `SpanMaker`
asks the provider's sampler and id generator, as the SDK's tracer does, and gives each ended
span to the batch processor as the SDK's `ReadableSpan`. Resource, sampler, batching and
export stay the SDK's, so the `OTEL_*` variables keep working.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

UNSET = Status(StatusCode.UNSET)


@dataclass(slots=True)
class OpenSpan:
    """A span being recorded (or, when not sampled, only carrying its context onward)."""

    name: str
    context: SpanContext
    parent: SpanContext | None
    kind: SpanKind
    start: int
    attributes: dict[str, Any]
    recording: bool
    events: list[Event] = field(default_factory=list)
    status: Status = UNSET
    ended: bool = False

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.recording and not self.ended

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self.attributes.update(attributes)

    def add_event(self, name: str, attributes: dict[str, Any]) -> None:
        self.events.append(Event(name, attributes, time.time_ns()))

    def set_status(self, status: Status) -> None:
        self.status = status


class SpanMaker:
    """Starts spans as the provider's tracer would, and ends them into `processor`."""

    def __init__(
        self, provider: TracerProvider, processor: SpanProcessor, scope: InstrumentationScope
    ) -> None:
        self.provider = provider
        self.processor = processor
        self.scope = scope

    def start(
        self,
        name: str,
        kind: SpanKind,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        start: int | None = None,
    ) -> OpenSpan:
        """A new span, child of `parent` (the client's or the gateway's), sampled or not."""
        valid = parent if parent is not None and parent.is_valid else None
        ids = self.provider.id_generator
        trace_id = valid.trace_id if valid is not None else ids.generate_trace_id()
        context: Context | None = None
        if valid is not None:
            context = set_span_in_context(NonRecordingSpan(valid))
        sampling = self.provider.sampler.should_sample(
            context, trace_id, name, kind, attributes, None
        )
        recording = sampling.decision.is_sampled()
        flags = TraceFlags(TraceFlags.SAMPLED if recording else TraceFlags.DEFAULT)
        own = SpanContext(trace_id, ids.generate_span_id(), False, flags, sampling.trace_state)
        if recording and sampling.attributes:  # the built-in samplers echo `attributes`
            attributes.update(dict(sampling.attributes))
        begun = time.time_ns() if start is None else start
        return OpenSpan(name, own, valid, kind, begun, attributes, recording)

    def end(self, span: OpenSpan, end: int | None = None) -> None:
        """Ends `span` once; a recorded one goes to the processor (its queue: no I/O)."""
        if span.ended:
            return
        span.ended = True
        if not span.recording:
            return
        finished = ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=self.provider.resource,
            attributes=span.attributes,
            events=span.events,
            kind=span.kind,
            status=span.status,
            start_time=span.start,
            end_time=time.time_ns() if end is None else end,
            instrumentation_scope=self.scope,
        )
        self.processor.on_end(finished)
