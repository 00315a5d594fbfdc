"""The `application/vnd.amazon.eventstream` binary framing of Bedrock's ConverseStream.

An incremental decoder: feed bytes as they arrive, from any split of the stream, and get
back the messages they complete, both CRC32s checked. No I/O.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from modelway.errors import GatewayError, upstream_error

_PRELUDE = 12  # total length u32, headers length u32, prelude CRC32
_TRAILER = 4  # message CRC32
MAX_MESSAGE_BYTES = 24 * 1024 * 1024

HeaderValue = bool | int | bytes | str


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One decoded eventstream message: its headers (`:event-type`, ...) and payload bytes."""

    headers: dict[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


def _invalid(message: str) -> GatewayError:
    return upstream_error(
        502, f"the backend's event stream is broken: {message}", "upstream_invalid_stream"
    )


class EventStreamDecoder:
    """Incremental `application/vnd.amazon.eventstream` decoder: feed bytes as they arrive,
    get back the messages they complete. Both CRCs are checked; a broken frame raises
    GatewayError 502, after the messages before it have been returned."""

    __slots__ = ("_buffer", "_error")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._error: GatewayError | None = None

    def feed(self, data: bytes) -> list[EventMessage]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[EventMessage] = []
        try:
            self._take(messages)
        except GatewayError as error:
            if not messages:
                raise
            self._error, self._buffer = error, bytearray()
        return messages

    def close(self) -> None:
        """End of stream: raise if a message was cut off (or a broken frame is pending)."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            raise _invalid(f"it ends inside a message ({len(self._buffer)} bytes left over)")

    def _take(self, messages: list[EventMessage]) -> None:
        start = 0
        try:
            while len(self._buffer) - start >= _PRELUDE:
                total = self._frame_length(start)
                if len(self._buffer) - start < total:
                    break
                messages.append(_message(bytes(self._buffer[start : start + total])))
                start += total
        finally:
            del self._buffer[:start]

    def _frame_length(self, start: int) -> int:
        total, headers_length, crc = struct.unpack_from(">III", self._buffer, start)
        if zlib.crc32(self._buffer[start : start + 8]) != crc:
            raise _invalid("prelude checksum mismatch")
        if total < _PRELUDE + _TRAILER + headers_length or total > MAX_MESSAGE_BYTES:
            raise _invalid(f"impossible message length {total}")
        return int(total)


def _message(frame: bytes) -> EventMessage:
    (expected,) = struct.unpack_from(">I", frame, len(frame) - _TRAILER)
    if zlib.crc32(frame[:-_TRAILER]) != expected:
        raise _invalid("message checksum mismatch")
    (headers_length,) = struct.unpack_from(">I", frame, 4)
    headers_end = _PRELUDE + headers_length
    headers = _headers(frame[_PRELUDE:headers_end])
    return EventMessage(headers, frame[headers_end:-_TRAILER])


_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}  # byte, short, int, long, timestamp


def _headers(raw: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    offset = 0
    try:
        while offset < len(raw):
            name_length = raw[offset]
            name = raw[offset + 1 : offset + 1 + name_length].decode()
            value, offset = _header_value(raw, offset + 1 + name_length)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, ValueError):
        raise _invalid("malformed message headers") from None
    return headers


def _header_value(raw: bytes, offset: int) -> tuple[HeaderValue, int]:
    kind = raw[offset]
    offset += 1
    if kind in (0, 1):  # boolean true / false, no value bytes
        return kind == 0, offset
    if kind in _FIXED:
        fmt = _FIXED[kind]
        return struct.unpack_from(fmt, raw, offset)[0], offset + struct.calcsize(fmt)
    if kind == 9:  # uuid
        return _exact(raw, offset, 16), offset + 16
    if kind in (6, 7):  # byte array / string: u16 length, then the bytes
        (length,) = struct.unpack_from(">H", raw, offset)
        value = _exact(raw, offset + 2, length)
        return (value.decode() if kind == 7 else value), offset + 2 + length
    raise ValueError(f"unknown header type {kind}")


def _exact(raw: bytes, offset: int, length: int) -> bytes:
    value = raw[offset : offset + length]
    if len(value) != length:
        raise ValueError("header value cut off")
    return value
