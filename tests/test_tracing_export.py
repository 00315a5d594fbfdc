"""The tracing plugin's own OTLP export path: the span encoder against OpenTelemetry's, and
the exporter against a real OTLP/HTTP receiver (retries, gzip, headers, failures), and the lean
spans through the SDK's sampler and batch processor.

The reference for the encoder is `opentelemetry-exporter-otlp-proto-common`'s `encode_spans`:
for the same SDK spans the bytes must be identical.
"""

from __future__ import annotations

import socket
import time

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from modelway.plugins.ops.tracing.exporter import OtlpHttpExporter
from modelway.plugins.ops.tracing.otlp import SpanEncoder
from modelway.plugins.ops.tracing.spans import SpanMaker
from tests.otlp_receiver import OtlpReceiver

REMOTE = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True,
                     TraceFlags(1), TraceState([("vendor", "1"), ("other", "x")]))  # fmt: skip


class Keep(SpanExporter):
    """Keeps the spans the SDK ends (the reference spans for the encoder)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: object) -> SpanExportResult:
        self.spans.extend(spans)  # type: ignore[call-overload]
        return SpanExportResult.SUCCESS


def sdk_spans() -> list[ReadableSpan]:
    keep = Keep()
    resource = Resource.create({"service.name": "gw", "replicas": 3, "ratio": 0.5,
                                "zones": ["a", "b"]})  # fmt: skip
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = provider.get_tracer("modelway", "1.2.3", schema_url="https://example.com/s")
    attributes = {
        "text": "héllo ✓", "empty": "", "yes": True, "no": False, "zero": 0, "one": 1,
        "negative": -42, "big": 2**62, "real": 2.5, "texts": ["x", "y"], "ints": [1, -2],
        "bools": [True, False], "reals": [0.5], "long": "z" * 300,
    }  # fmt: skip
    server = tracer.start_span("chat gpt-4o", context=set_span_in_context(NonRecordingSpan(REMOTE)),
                               kind=SpanKind.SERVER, attributes=attributes,
                               links=[Link(REMOTE, {"why": "batch"})])  # fmt: skip
    server.add_event("modelway.guard", {"modelway.guard.action": "mask", "count": 2})
    server.add_event("bare")
    child = tracer.start_span("attempt", context=set_span_in_context(server),
                              kind=SpanKind.CLIENT)  # fmt: skip
    child.set_status(Status(StatusCode.ERROR, "overloaded"))
    child.end()
    server.set_status(Status(StatusCode.OK))
    server.end()
    plain = provider.get_tracer("other").start_span("internal")
    plain.end()
    return keep.spans


def test_the_encoding_is_byte_for_byte_opentelemetrys():
    spans = sdk_spans()
    encoder = SpanEncoder()
    assert encoder.encode(spans) == encode_spans(spans).SerializePartialToString()
    assert encoder.encode(spans) == encode_spans(spans).SerializePartialToString()  # cached
    assert encoder.encode(spans[:1]) == encode_spans(spans[:1]).SerializePartialToString()


def test_true_and_one_are_not_confused_by_the_cache():
    keep = Keep()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = provider.get_tracer("t")
    for value in (1, True, 0, False, 1.0):
        tracer.start_span("s", attributes={"v": value}).end()
    assert SpanEncoder().encode(keep.spans) == encode_spans(keep.spans).SerializePartialToString()


def export_one(exporter: OtlpHttpExporter) -> SpanExportResult:
    return exporter.export(sdk_spans()[:1])


def test_the_exporter_sends_what_a_real_receiver_decodes():
    with OtlpReceiver() as receiver:
        assert export_one(OtlpHttpExporter(receiver.url, {"Authorization": "Bearer t"})) == (
            SpanExportResult.SUCCESS
        )
        (span,) = receiver.spans
        assert span["name"] == "attempt"
        assert span["parent_id"] and span["status"] == 2
        assert receiver.posts[0]["authorization"] == "Bearer t"
        assert receiver.posts[0]["content-type"] == "application/x-protobuf"


def test_a_503_is_retried_and_the_spans_arrive():
    with OtlpReceiver(failures=1) as receiver:
        assert export_one(OtlpHttpExporter(receiver.url)) == SpanExportResult.SUCCESS
        assert len(receiver.posts) == 2
        assert len(receiver.spans) == 1


def test_a_400_is_not_retried():
    with OtlpReceiver(failures=1, failure_status=400) as receiver:
        assert export_one(OtlpHttpExporter(receiver.url)) == SpanExportResult.FAILURE
        assert len(receiver.posts) == 1
        assert receiver.spans == []


def test_the_otel_variables_set_endpoint_headers_and_gzip(monkeypatch: pytest.MonkeyPatch):
    with OtlpReceiver() as receiver:
        base = receiver.url.removesuffix("/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base + "/")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=blue%20team,x-other=1")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
        exporter = OtlpHttpExporter()
        assert exporter.endpoint == receiver.url
        assert export_one(exporter) == SpanExportResult.SUCCESS
        assert receiver.posts[0]["x-tenant"] == "blue team"
        assert receiver.posts[0]["content-encoding"] == "gzip"
        assert len(receiver.spans) == 1
        assert export_one(exporter) == SpanExportResult.SUCCESS  # the kept connection
        assert len(receiver.spans) == 2


def test_an_unreachable_collector_fails_within_the_timeout(monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    exporter = OtlpHttpExporter(f"http://127.0.0.1:{port}/v1/traces")
    began = time.monotonic()
    assert export_one(exporter) == SpanExportResult.FAILURE
    assert time.monotonic() - began < 30  # bounded by the timeout, not a hang


def maker(keep: Keep, ratio: float | None = None) -> SpanMaker:
    sampler = None if ratio is None else ParentBased(TraceIdRatioBased(ratio))
    provider = TracerProvider(resource=Resource({"service.name": "lean"}), sampler=sampler)
    return SpanMaker(provider, SimpleSpanProcessor(keep), InstrumentationScope("modelway", "1"))


def test_lean_spans_become_the_sdks_readable_spans():
    keep = Keep()
    spans = maker(keep)
    server = spans.start("chat m", SpanKind.SERVER, REMOTE, {"a": "b"}, 1_000)
    child = spans.start("chat m", SpanKind.CLIENT, server.get_span_context(), {"c": 1})
    child.set_status(Status(StatusCode.ERROR))
    spans.end(child, 2_000)
    server.set_attributes({"late": True})
    server.add_event("modelway.failover", {"modelway.backend": "primary"})
    spans.end(server, 3_000)
    spans.end(server, 4_000)  # a second end is ignored
    first, second = keep.spans
    assert (first.parent, second.parent) == (server.get_span_context(), REMOTE)
    assert first.context.trace_id == REMOTE.trace_id == second.context.trace_id
    assert second.context.trace_state == REMOTE.trace_state
    assert dict(second.attributes or {}) == {"a": "b", "late": True}
    assert [e.name for e in second.events] == ["modelway.failover"]
    assert (second.start_time, second.end_time, first.status.status_code) == (
        1_000, 3_000, StatusCode.ERROR)  # fmt: skip
    assert second.resource.attributes["service.name"] == "lean"
    assert SpanEncoder().encode(keep.spans) == encode_spans(keep.spans).SerializePartialToString()


def test_an_unsampled_parent_gives_a_span_that_records_nothing():
    keep = Keep()
    spans = maker(keep, ratio=1.0)
    unsampled = SpanContext(REMOTE.trace_id, REMOTE.span_id, True, TraceFlags(0))
    span = spans.start("chat m", SpanKind.SERVER, unsampled, {})
    assert not span.is_recording()
    assert span.get_span_context().trace_id == REMOTE.trace_id
    assert not span.get_span_context().trace_flags.sampled
    spans.end(span)
    assert keep.spans == []
