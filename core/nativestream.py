"""The base of same-API SSE streams: the upstream's bytes go to the client as they are read.

With no filter to apply and nothing to strip, `feed` returns its input unchanged and the
events are only scanned (cheaply: a wire API parses just the few events that carry usage, the
end of the stream or an error). With text filters, or an event to remove, each complete event
goes through `rewrite`, which may edit its text and returns the blocks to send. A stream that
ends before its end event is reported once as truncated.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from modelway import jsonx
from modelway.canonical import Usage
from modelway.errors import GatewayError
from modelway.sse import EventSplitter, event_data
from modelway.wire import TextFilter


def truncated() -> GatewayError:
    return GatewayError(
        502,
        "the backend's stream ended before it was complete",
        "server_error",
        "upstream_stream_truncated",
    )


def event_json(event: bytes) -> Any:
    """The JSON data of a raw event block, or None."""
    try:
        return jsonx.loads(event_data(event))
    except ValueError:
        return None


def frame(data: Any, event: str | None = None) -> bytes:
    """An SSE event block for `data` (JSON), with its blank line."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + jsonx.dumps(data) + b"\n\n"


class RawStream:
    """Bytes that are not events (a pass-through answer): sent as they are, nothing read."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.error: GatewayError | None = None

    async def feed(self, data: bytes) -> bytes:
        return data

    async def close(self) -> bytes:
        return b""

    def error_event(self, error: GatewayError) -> bytes:
        return b""  # a body already under way cannot carry an error; the cut shows


class SSEStream(ABC):
    """A same-API SSE stream (`modelway.ingress.NativeStream`)."""

    usage: Usage | None
    error: GatewayError | None

    def __init__(self, filters: list[TextFilter], rewrite: bool) -> None:
        self.filters = filters
        self.usage = None
        self.error = None
        self.error_forwarded = False
        """The error came as the upstream's own event, which the client already has."""
        self.complete = False
        self._splitter = EventSplitter()
        self._rewrite = rewrite or bool(filters)

    async def feed(self, data: bytes) -> bytes:
        events = self._splitter.feed(data)
        if not self._rewrite:
            for event in events:
                self.scan(event)
            return data
        return await self._rewrite_all(events)

    async def close(self) -> bytes:
        events = self._splitter.close()
        if self._rewrite:
            out = await self._rewrite_all(events)
        else:
            for event in events:
                self.scan(event)
            out = b""
        if self.error is None and not self.complete:
            self.error = truncated()
        if self.error is None:
            out += await self.flush()
        return out

    async def _rewrite_all(self, events: list[bytes]) -> bytes:
        out: list[bytes] = []
        for event in events:
            out.extend(await self.rewrite(event))
            if self.error is not None:
                break
        return b"".join(out)

    def failed(self, error: GatewayError) -> None:
        """The upstream's own error event was seen (and forwarded)."""
        self.error = error
        self.error_forwarded = True

    @abstractmethod
    def scan(self, event: bytes) -> None:
        """Note usage, the end and errors from one raw event (no edits)."""

    @abstractmethod
    async def rewrite(self, event: bytes) -> list[bytes]:
        """The blocks (with their blank lines) to send for one raw event; must also scan."""

    async def flush(self) -> bytes:
        """The stream ended well: what the filters still hold, as events."""
        return b""

    @abstractmethod
    def error_event(self, error: GatewayError) -> bytes: ...
