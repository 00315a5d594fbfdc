"""Pass-through uploads streamed to the backend instead of read whole.

The engine chooses them from the request head (`streamable_head`); mitmproxy then streams the
body to the relay, which feeds it to an `UploadBody` as it arrives; the upstream call reads
the body from it (`UploadBody.chunks`), at most `gateway.max_body_bytes`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from modelway.replies import Reply, StreamReply

STREAM_ABOVE = 1 << 20
"""A body with a known length streams when it is longer than this (smaller ones are read
whole, as every other request)."""
_HIGH = 1 << 20
"""Bytes queued for the upstream above which the relay stops reading mitmproxy's socket."""


def streamable_head(method: str, headers: Mapping[str, str], http_version: str) -> bool:
    """Whether a request head is one of an upload that may stream: POST or PUT over HTTP/1.1,
    a body in a content type that is not JSON (or the bytes of Google's resumable upload,
    which google-genai labels JSON), chunked or longer than `STREAM_ABOVE`."""
    if method not in ("POST", "PUT") or http_version != "HTTP/1.1":
        return False
    resumable = "upload" in headers.get("x-goog-upload-command", "").lower()
    if "json" in headers.get("content-type", "").lower() and not resumable:
        return False
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    length = headers.get("content-length", "")
    return length.isdigit() and int(length) > STREAM_ABOVE


class UploadBody:
    """A request body as the relay receives it, read once by the upstream call."""

    def __init__(self, limit: int, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self.limit = limit
        self.received = 0
        self.ended = False
        self.over = False
        """More than `limit` bytes arrived: the upstream call is cut."""
        self.broken = False
        self.discarding = False
        self._pause, self._resume = pause, resume
        self._paused = False
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._changed = asyncio.Event()

    @property
    def complete(self) -> bool:
        """No more bytes will come: the body ended, went over the limit or broke off."""
        return self.ended or self.over or self.broken

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.limit:
            self.over = True
            self._queue.clear()
        elif not self.discarding:
            self._queue.append(data)
            self._queued += len(data)
            if self._queued > _HIGH and not self._paused:
                self._paused = True
                self._pause()
        self._changed.set()

    def end(self) -> None:
        self.ended = True
        self._changed.set()

    def break_off(self) -> None:
        self.broken = True
        self._changed.set()

    def discard(self) -> None:
        """Nobody reads the rest (the answer exists): count it, drop it."""
        self.discarding = True
        self._queue.clear()
        self._queued = 0
        self._go_on()

    async def finished(self) -> None:
        while not self.complete:
            self._changed.clear()
            await self._changed.wait()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises past the limit or when the client's body broke off,
        so the upstream sees its request cut, never a shorter body that looks whole."""
        while True:
            while not self._queue:
                if self.over or self.broken:
                    raise ConnectionAbortedError("the upload was cut")
                if self.ended:
                    return
                self._changed.clear()
                await self._changed.wait()
            chunk = self._queue.popleft()
            self._queued -= len(chunk)
            if self._queued <= _HIGH // 2:
                self._go_on()
            yield chunk

    def _go_on(self) -> None:
        if self._paused:
            self._paused = False
            self._resume()


@dataclass(slots=True)
class Upload:
    """A relay job: the request path's work for an upload, given its body once it arrives."""

    run: Callable[[UploadBody], Awaitable[Reply | StreamReply]]
    limit: int
