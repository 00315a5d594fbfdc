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


class BlockScanner:
    """Finds the few events of a passing SSE stream that hold a marker, without splitting the
    stream into events: the bytes are searched for each marker (in C), and only the events
    around a hit are cut out. An event that is not complete yet waits in `tail`."""

    def __init__(self, markers: tuple[bytes, ...]) -> None:
        self.markers = markers
        self.tail = b""

    def feed(self, data: bytes) -> tuple[bytes, list[bytes]]:
        """The complete events `data` ends (as one block, blank lines kept) and those of them
        that hold a marker; what follows the last complete event is kept for later."""
        buffer = self.tail + data if self.tail else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        last = buffer.rfind(b"\n\n")
        if last < 0:
            self.tail = buffer
            return b"", []
        block, self.tail = buffer[: last + 2], buffer[last + 2 :]
        return block, self.hits(block)

    def close(self) -> tuple[bytes, list[bytes]]:
        block, self.tail = self.tail, b""
        return block, self.hits(block + b"\n\n") if block.strip() else []

    def hits(self, block: bytes) -> list[bytes]:
        starts: set[int] = set()
        for marker in self.markers:
            found = block.find(marker)
            while found >= 0:
                boundary = block.rfind(b"\n\n", 0, found)
                starts.add(0 if boundary < 0 else boundary + 2)
                found = block.find(marker, found + len(marker))
        events = []
        for start in sorted(starts):
            end = block.find(b"\n\n", start)
            events.append(block[start : end if end >= 0 else len(block)])
        return events


class SSEStream(ABC):
    """A same-API SSE stream (`modelway.ingress.NativeStream`).

    Without text filters, the stream passes as the upstream's bytes and only the events that
    hold one of `markers` are given to `scan` (block mode, `BlockScanner`). A subclass that
    must change the bytes without parsing each event (drop one event, strip a field) does it
    in `pass_block`. With text filters (or `rewrite`), every event goes through `rewrite`.
    """

    markers: tuple[bytes, ...] = ()
    """Substrings of the events `scan` must see (usage, the end, errors); others pass unread."""

    usage: Usage | None
    error: GatewayError | None

    def __init__(self, filters: list[TextFilter], rewrite: bool) -> None:
        self.filters = filters
        self.usage = None
        self.error = None
        self.error_forwarded = False
        """The error came as the upstream's own event, which the client already has."""
        self.complete = False
        self._rewrite = rewrite or bool(filters)
        self._splitter = EventSplitter()
        self._blocks = BlockScanner(self.markers)

    async def feed(self, data: bytes) -> bytes:
        if self._rewrite:
            return await self._rewrite_all(self._splitter.feed(data))
        block, hits = self._blocks.feed(data)
        for event in hits:
            self.scan(event)
        return self.pass_block(data, block, hits)

    async def close(self) -> bytes:
        if self._rewrite:
            out = await self._rewrite_all(self._splitter.close())
        else:
            block, hits = self._blocks.close()
            for event in hits:
                self.scan(event)
            out = self.pass_block(b"", block, hits, closing=True)
        if self.error is None and not self.complete:
            self.error = truncated()
        if self.error is None:
            out += await self.flush()
        return out

    def pass_block(
        self, data: bytes, block: bytes, hits: list[bytes], closing: bool = False
    ) -> bytes:
        """The bytes to send in block mode: by default `data` itself, as it was read."""
        return data

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
        """Note usage, the end and errors from one raw event that holds a marker."""

    @abstractmethod
    async def rewrite(self, event: bytes) -> list[bytes]:
        """The blocks (with their blank lines) to send for one raw event; must also scan."""

    async def flush(self) -> bytes:
        """The stream ended well: what the filters still hold, as events."""
        return b""

    @abstractmethod
    def error_event(self, error: GatewayError) -> bytes: ...
