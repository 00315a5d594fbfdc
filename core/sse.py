"""Server-sent events: an incremental decoder for any split of the byte stream, and an encoder.

Follows the HTML living standard's event-stream rules: lines end in CRLF, LF or CR; lines
starting with ':' are comments; `data` lines accumulate with '\\n'; a blank line dispatches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    """Feed bytes as they arrive; get back the events they complete."""

    __slots__ = ("_bom_checked", "_buffer", "_data", "_event", "_id", "_skip_lf")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._skip_lf = False
        self._bom_checked = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._bom_checked:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._buffer = buffer  # maybe a byte-order mark split across reads
                return []
            buffer = buffer.removeprefix(_BOM)
            self._bom_checked = True
        if self._skip_lf and buffer:
            # the previous read ended in CR: a LF now is the second half of that CRLF
            buffer = buffer.removeprefix(b"\n")
            self._skip_lf = False
        events: list[SSEEvent] = []
        start = 0
        for match in _LINE_END.finditer(buffer):
            self._line(buffer[start : match.start()], events)
            start = match.end()
            self._skip_lf = match.group() == b"\r" and start == len(buffer)
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: a last event without its blank line is still delivered."""
        events: list[SSEEvent] = []
        if self._buffer and not (not self._bom_checked and _BOM.startswith(self._buffer)):
            self._line(self._buffer, events)
        self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if not raw:
            if self._data:
                events.append(SSEEvent("\n".join(self._data), self._event, self._id))
            self._data, self._event = [], None
            return
        if raw[0] == 58:  # ':' comment
            return
        line = raw.decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value


def encode_event(data: str, event: str | None = None) -> bytes:
    """One event in wire form, LF line ends, multi-line data split into `data:` lines."""
    head = f"event: {event}\n" if event else ""
    if "\n" not in data and "\r" not in data:
        return f"{head}data: {data}\n\n".encode()
    lines = "".join(f"data: {line}\n" for line in _TEXT_LINE_END.split(data))
    return f"{head}{lines}\n".encode()


class EventSplitter:
    """Splits an SSE byte stream into raw event blocks (each without its blank line), cheaply:
    for scanning events without decoding them. CR-only line ends are normalized to LF."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            buffer = _normalize(buffer)
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        return [event for event in events if event]

    def close(self) -> list[bytes]:
        rest, self._buffer = self._buffer.strip(b"\n"), b""
        return [rest] if rest else []


def _normalize(buffer: bytes) -> bytes:
    # A CR at the very end may be the first half of a CRLF: keep it as CR until more comes.
    tail = b"\r" if buffer.endswith(b"\r") else b""
    body = buffer[:-1] if tail else buffer
    return body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail


def event_field(event: bytes, name: bytes) -> bytes | None:
    """The value of the first `name:` line of a raw event block (e.g. b"event"), or None."""
    prefix = name + b":"
    for line in event.split(b"\n"):
        if line.startswith(prefix):
            return line[len(prefix) :].lstrip(b" ")
    return None


def event_data(event: bytes) -> bytes:
    """The data of a raw event block (`data:` lines joined with LF)."""
    lines = [
        line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    return b"\n".join(lines)
