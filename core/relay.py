"""A minimal HTTP/1.1 server on mitmproxy's own event loop that serves streamed answers.

mitmproxy can stream a response to the client only when it reads it from an upstream, not
when an addon makes it. So a streaming request is pointed at this server with a one-time
token; the answer (status, headers, then a body produced as it is sent) is written in chunked
encoding, each piece as soon as it exists (the head together with the first piece when that
is ready at once), with Nagle's algorithm off. Only 127.0.0.1
listens; an unknown token gets a 404. Connections are kept alive, so mitmproxy reuses one per
client connection. When mitmproxy closes the connection (its client went away), the stream
is cancelled at once and its upstream released.

An upload (`modelway.uploads`) comes here with its body, which mitmproxy streams: the relay
reads it as it arrives (content-length or chunked, h11) and the request path's work sends it
upstream as it is read; the answer goes back as any other.

A streaming request can be pointed here before its upstream has answered (`Pending`: the
request path's task). mitmproxy's hop to the relay then overlaps the upstream's time to first
byte; the relay waits for the task and sends what it gives: the stream, or a whole answer (an
error before the first byte) with its own status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import sys
from collections.abc import Coroutine
from http import HTTPStatus
from typing import Any, TypeAlias, cast

import h11

from modelway.replies import Reply, StreamReply
from modelway.uploads import Upload, UploadBody

Pending: TypeAlias = "asyncio.Future[Reply | StreamReply]"
"""The request path's work for a request pointed at the relay before it has answered."""
Job: TypeAlias = "StreamReply | Pending | Upload"

logger = logging.getLogger("modelway.relay")

_MAX_HEAD = 8192


class RelayServer:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[_RelayConnection] = set()
        self.accepted = 0
        """Connections mitmproxy has opened (kept alive: one per client connection)."""
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _RelayConnection(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            connection.close()
        self._jobs.clear()

    def register(self, job: Job) -> str:
        """Park a streamed answer (or the work that will give one) until mitmproxy asks for
        it; returns the URL path."""
        token = secrets.token_urlsafe(18)
        self._jobs[token] = job
        return f"/{token}"

    def drop(self, path: str) -> None:
        """Discard a parked answer mitmproxy never asked for (its client went away): its
        work is cancelled, its upstream released."""
        job = self._jobs.pop(path.lstrip("/"), None)
        if job is not None:
            discard(job)

    def take(self, token: str) -> Job | None:
        return self._jobs.pop(token, None)


def discard(job: Job) -> None:
    """Cancel a job nobody will read: the work if it still runs, else its stream's body."""
    if isinstance(job, Upload):
        return  # its work starts only when the relay is asked for it
    if isinstance(job, StreamReply):
        job.body.cancel()
    elif not job.done():
        job.cancel()
    elif not job.cancelled() and job.exception() is None:
        result = job.result()
        if isinstance(result, StreamReply):
            result.body.cancel()


class _RelayConnection(asyncio.Protocol):
    def __init__(self, server: RelayServer) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._job: StreamReply | None = None
        self._pending: Pending | None = None
        self._head = b""
        self._writable = asyncio.Event()
        self._writable.set()
        self._reader: h11.Connection | None = None
        self._upload: UploadBody | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server._connections.add(self)
        self._server.accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._writable.set()
        if self._upload is not None and not self._upload.complete:
            self._upload.break_off()
        if self._task is not None and not self._task.done():
            if self._job is not None:
                self._job.body.cancel()
            if self._pending is not None:
                discard(self._pending)
            self._task.cancel()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._reader is not None:
            self._read_upload(data)
            return
        if self._task is not None and not self._task.done():
            return  # the request has no body; nothing else arrives while a stream runs
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                self.close()
            return
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        token = (
            head.split(b" ", 2)[1].lstrip(b"/").decode("ascii", "replace") if b" " in head else ""
        )
        job = self._server.take(token)
        if job is None:
            self._write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            return
        if isinstance(job, Upload):
            self._begin_upload(job, head + b"\r\n\r\n" + self._buffer)
            self._buffer = b""
        elif isinstance(job, StreamReply):
            self._job = job
            self._task = _start(self._serve(job))
        else:
            self._pending = job
            self._task = _start(self._await(job))

    def _begin_upload(self, job: Upload, data: bytes) -> None:
        assert self._transport is not None
        transport = self._transport
        self._reader = h11.Connection(h11.SERVER)
        self._upload = UploadBody(job.limit, transport.pause_reading, transport.resume_reading)
        self._task = _start(self._uploading(job, self._upload))
        self._read_upload(data)

    def _read_upload(self, data: bytes) -> None:
        """The upload's body as h11 frames it, to the upload; nothing after its end."""
        reader, upload = self._reader, self._upload
        assert reader is not None and upload is not None
        if upload.complete:
            return  # past the limit or broken off: the connection closes after the answer
        try:
            reader.receive_data(data)
            while not upload.complete:
                event = reader.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.Data):
                    upload.feed(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    upload.end()
        except h11.RemoteProtocolError:
            upload.break_off()
            self.close()

    async def _uploading(self, job: Upload, upload: UploadBody) -> None:
        """The request path's work with the body, then its answer once the body is over (the
        rest of a body nobody reads is counted and dropped; one that went over the limit or
        broke off is not waited for, and the connection closes after the answer)."""
        try:
            result = await job.run(upload)
        except asyncio.CancelledError:
            return
        except Exception:
            logger.exception("a relayed upload failed")
            self.close()
            return
        upload.discard()
        await upload.finished()
        self._reader = self._upload = None
        if isinstance(result, StreamReply):
            self._job = result
            await self._serve(result)
        else:
            self._write(_head(result.status, result.headers, len(result.body)) + result.body)
        if not upload.ended:
            self.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def _send(self, data: bytes) -> None:
        if not data:
            return
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the relay connection is closed")
        piece = b"%x\r\n%b\r\n" % (len(data), data)
        if self._head:
            piece, self._head = self._head + piece, b""
        self._transport.write(piece)
        if not self._writable.is_set():
            await self._writable.wait()

    def _flush_head(self) -> None:
        if self._head:
            head, self._head = self._head, b""
            self._write(head)

    async def _await(self, pending: Pending) -> None:
        """Wait for the request path's answer, then send it: a stream, or a whole answer."""
        try:
            result = await pending
        except asyncio.CancelledError:
            return  # the connection was lost (`connection_lost` discarded the work)
        except Exception:
            logger.exception("a relayed request failed")
            self.close()
            return
        finally:
            self._pending = None
        if isinstance(result, StreamReply):
            self._job = result
            await self._serve(result)
            return
        head = _head(result.status, result.headers, len(result.body))
        self._write(head + result.body)

    async def _serve(self, job: StreamReply) -> None:
        # The head leaves with the first piece when the body has one at once (one segment,
        # one read for mitmproxy); else on its own at the loop's next turn.
        self._head = _head(job.status, job.headers)
        asyncio.get_running_loop().call_soon(self._flush_head)
        try:
            await job.body.run(self._send)
        except asyncio.CancelledError:
            return
        except Exception:
            logger.exception("a streamed answer failed")
            self._flush_head()
            self.close()
            return
        finally:
            self._job = None
        self._flush_head()
        self._write(b"0\r\n\r\n")


def _start(serve: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """The stream's task; on Python 3.12+ it starts at once (eagerly), so the first piece is
    written in this callback, not after every other callback of the loop's turn."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(serve, loop=loop, eager_start=True)
    return loop.create_task(serve)


def _head(status: int, headers: dict[str, str], length: int | None = None) -> bytes:
    """The answer's head: chunked for a stream, with `length` for a whole answer."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    lines = [f"HTTP/1.1 {status} {reason}"]
    for name, value in headers.items():
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    if length is None:
        lines.append("cache-control: no-cache")
        lines.append("transfer-encoding: chunked")
    else:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")
