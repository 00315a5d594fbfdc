"""OTLP protobuf encoding of finished spans, written straight to bytes.

The OpenTelemetry exporter builds a protobuf message object per span, attribute and value
before serialising them, about 100 us per span in its export thread, which holds the GIL
the event loop needs. `encode_spans` writes the same `ExportTraceServiceRequest` bytes (the
same fields in the same order as `opentelemetry-exporter-otlp-proto-common`'s encoder, so the
output is byte-for-byte identical; tests compare the two) from the SDK's `ReadableSpan`s, with
the encoded resource, scope and attribute keys cached.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext

logger = logging.getLogger("modelway.tracing")

_SMALL = [bytes([n]) for n in range(128)]
_KEYS: dict[str, bytes] = {}
"""An attribute key's encoded `KeyValue.key` field (keys repeat on every span)."""
_KEY_CACHE_LIMIT = 4096
_PAIRS: dict[tuple[int, str, type, Any], bytes] = {}
"""An attribute's encoded field by (tag, key, type, value), as True == 1: values repeat."""
_PAIR_CACHE_LIMIT = 8192
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64  # int64: two's complement in ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field; `tag` is the encoded (number << 3 | 2) byte."""
    return _SMALL[tag] + _varint(len(payload)) + payload


def _text(tag: int, text: str) -> bytes:
    return _field(tag, text.encode("utf-8", "surrogatepass"))


def _value(value: Any) -> bytes:
    """An `AnyValue` message, the same cases in the same order as the SDK's encoder."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _text(0x0A, value)
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join(_field(0x0A, _value(item)) for item in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_field(0x0A, _key_value(str(k), v)) for k, v in value.items())
        return _field(0x32, pairs)
    raise TypeError(f"invalid attribute type {type(value).__name__}")


def _key(key: str) -> bytes:
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _text(0x0A, key)
        if len(_KEYS) < _KEY_CACHE_LIMIT:
            _KEYS[key] = encoded
    return encoded


def _key_value(key: str, value: Any) -> bytes:
    return _key(key) + _field(0x12, _value(value))


def _attributes(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a repeated `KeyValue` field `tag` (one that fails is left out)."""
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        kind = type(value)
        cacheable = kind is str or kind is bool or kind is int
        encoded = _PAIRS.get((tag, key, kind, value)) if cacheable else None
        if encoded is None:
            try:
                encoded = _field(tag, _key_value(key, value))
            except (TypeError, ValueError, OverflowError) as error:
                logger.error("tracing: attribute %s not encoded: %s", key, error)
                continue
            if cacheable:
                if len(_PAIRS) >= _PAIR_CACHE_LIMIT:
                    _PAIRS.clear()  # unique values (ids, counts) pass through; the rest return
                _PAIRS[(tag, key, kind, value)] = encoded
        parts.append(encoded)
    return b"".join(parts)


def _count(tag: int, count: int) -> bytes:
    return _SMALL[tag] + _varint(count) if count else b""


def _flags(context: SpanContext | None) -> int:
    return _HAS_IS_REMOTE | (_IS_REMOTE if context is not None and context.is_remote else 0)


def _event(event: Event) -> bytes:
    return (b"\x09" + _FIXED64.pack(event.timestamp) + _text(0x12, event.name)
            + _attributes(0x1A, event.attributes)
            + _count(0x20, event.dropped_attributes))  # fmt: skip


def _link(link: Link) -> bytes:
    context = link.context
    dropped = getattr(link, "dropped_attributes", 0)
    return (_field(0x0A, context.trace_id.to_bytes(16, "big"))
            + _field(0x12, context.span_id.to_bytes(8, "big"))
            + _attributes(0x22, link.attributes) + _count(0x28, dropped)
            + b"\x35" + _FIXED32.pack(_flags(context)))  # fmt: skip


def _status(span: ReadableSpan) -> bytes:
    status = span.status
    message = _text(0x12, status.description) if status.description else b""
    code = status.status_code.value
    return _field(0x7A, message + (b"\x18" + _varint(code) if code else b""))


def _span(span: ReadableSpan) -> bytes:
    """One `Span` message, its fields in number order."""
    context = span.get_span_context()
    assert context is not None and span.start_time is not None and span.end_time is not None
    state = context.trace_state
    parts = [
        _field(0x0A, context.trace_id.to_bytes(16, "big")),
        _field(0x12, context.span_id.to_bytes(8, "big")),
        _text(0x1A, ",".join(f"{k}={v}" for k, v in state.items())) if state else b"",
        _field(0x22, span.parent.span_id.to_bytes(8, "big")) if span.parent else b"",
        _text(0x2A, span.name),
        b"\x30" + _varint(span.kind.value + 1),  # the SDK's INTERNAL is 0, OTLP's is 1
        b"\x39" + _FIXED64.pack(span.start_time),
        b"\x41" + _FIXED64.pack(span.end_time),
        _attributes(0x4A, span.attributes),
        _count(0x50, span.dropped_attributes),
        b"".join(_field(0x5A, _event(event)) for event in span.events),
        _count(0x60, span.dropped_events),
        b"".join(_field(0x6A, _link(link)) for link in span.links),
        _count(0x70, span.dropped_links),
        _status(span),
        b"\x85\x01" + _FIXED32.pack(_flags(span.parent)),
    ]
    return b"".join(parts)


def _resource(resource: Resource) -> bytes:
    return _attributes(0x0A, resource.attributes)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    return (_text(0x0A, scope.name) if scope.name else b"") + (
        _text(0x12, scope.version) if scope.version else b""
    ) + _attributes(0x1A, getattr(scope, "attributes", None))


class SpanEncoder:
    """Encodes batches of spans; a resource's and a scope's encoding is kept between batches
    (the gateway's are the same object for its lifetime)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, bytes]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """An `ExportTraceServiceRequest`: spans grouped by resource, then by scope (by
        identity: a `Resource` hashes by dumping its attributes to JSON)."""
        grouped: dict[int, tuple[Resource, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource, scope = span.resource, span.instrumentation_scope or None
            scopes = grouped.setdefault(id(resource), (resource, {}))[1]
            scopes.setdefault(id(scope), (scope, []))[1].append(_span(span))
        out = bytearray()
        for resource, scopes in grouped.values():
            body = bytearray(_field(0x0A, self._resource(resource)))
            for scope, encoded in scopes.values():
                scope_spans = _field(0x0A, self._scope(scope)) + b"".join(
                    _field(0x12, one) for one in encoded
                )
                if scope is not None and scope.schema_url:
                    scope_spans += _text(0x1A, scope.schema_url)
                body += _field(0x12, scope_spans)
            if resource.schema_url:
                body += _text(0x1A, resource.schema_url)
            out += _field(0x0A, bytes(body))
        return bytes(out)

    def _resource(self, resource: Resource) -> bytes:
        known = self._resources.get(id(resource))
        if known is None or known[0] is not resource:
            known = (resource, _resource(resource))
            self._resources = {id(resource): known}  # one resource per provider
        return known[1]

    def _scope(self, scope: InstrumentationScope | None) -> bytes:
        known = self._scopes.get(id(scope))
        if known is None or known[0] is not scope:
            known = (scope, _scope(scope))
            if len(self._scopes) > 64:
                self._scopes = {}
            self._scopes[id(scope)] = known
        return known[1]
