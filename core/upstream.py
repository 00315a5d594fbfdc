"""HTTP to the backends: one pooled aiohttp session, and failures mapped to gateway errors.

The gateway, not mitmproxy, talks to upstreams, so that connection errors become errors in
the client's own API shape and so that a failed attempt can move on to the next backend.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.payload
from yarl import URL

from modelway.canonical import UpstreamRequest
from modelway.errors import GatewayError

if TYPE_CHECKING:
    from modelway.extension import UpstreamResponse

_CHUNK = 64 * 1024
_LARGE_BODY = 2**20
"""aiohttp warns (ResourceWarning) when a raw bytes body is larger: it fears a blocking
write of a body still to be read. The gateway's body is in memory already and goes out in one
write to the socket's buffer, so for these the payload is made without the warning."""


class UpstreamFailure(Exception):
    """The backend could not be reached or broke the protocol. Always retriable."""

    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    def as_error(self, backend: str) -> GatewayError:
        code = "upstream_timeout" if self.status == 504 else "upstream_unavailable"
        return GatewayError(self.status, f"backend '{backend}': {self}", "server_error", code)


class AiohttpResponse:
    """An aiohttp response behind the `UpstreamResponse` protocol.

    A streamed body's idle limit (`idle`: the longest silence of the backend) is kept by
    `_IdleWatch`, not by aiohttp, which re-arms a timer on every read of the socket: with
    thousands of slow streams, one cancelled and one new timer per event."""

    __slots__ = ("_idle", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, idle: float | None = None) -> None:
        self._response = response
        self._idle = idle
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise classify(exc) from exc

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        watch = _IdleWatch.take_over(self._response, self._idle)
        try:
            async for chunk in self._response.content.iter_any():
                if watch is not None:  # the chunk is ours: the time it takes is not silence
                    watch.since = None
                yield chunk
                if watch is not None:
                    watch.since = watch.loop.time()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise classify(exc) from exc
        finally:
            if watch is not None:
                watch.stop()

    def release(self) -> None:
        self._response.release()


class _IdleWatch:
    """The idle limit of one streamed body, with one timer per `idle` seconds (not one per
    read): when it fires, a body that got data since is given the rest of its time again;
    one silent for `idle` seconds while it was waited for fails as aiohttp's own limit would
    (a socket timeout, the connection not reused). Time the reader spends on a chunk (a slow
    client holding it) is not silence, as aiohttp stops its limit while reading is paused."""

    __slots__ = ("handle", "idle", "loop", "response", "since")

    def __init__(self, response: aiohttp.ClientResponse, idle: float) -> None:
        self.response = response
        self.idle = idle
        self.loop = asyncio.get_running_loop()
        self.since: float | None = self.loop.time()
        """When the reader began to wait for the next chunk (None: it holds one)."""
        self.handle = self.loop.call_at(self.since + idle, self._check)

    @classmethod
    def take_over(cls, response: aiohttp.ClientResponse, idle: float | None) -> _IdleWatch | None:
        """A watch in place of aiohttp's limit on this response's connection, or None (no
        limit, or no connection to take it from: aiohttp keeps its own)."""
        protocol = response.connection.protocol if response.connection is not None else None
        if not idle or protocol is None or not hasattr(protocol, "read_timeout"):
            return None
        protocol.read_timeout = None  # its next read cancels the armed timer, arms none
        return cls(response, idle)

    def _check(self) -> None:
        now = self.loop.time()
        since = self.since
        if since is not None and now - since >= self.idle:
            error = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
            connection = self.response.connection
            if connection is not None and connection.protocol is not None:
                connection.protocol.set_exception(error)
            self.response.content.set_exception(error)
            return
        self.handle = self.loop.call_at((now if since is None else since) + self.idle, self._check)

    def stop(self) -> None:
        self.handle.cancel()


class HttpTransport:
    """Sends upstream requests over a shared connection pool (keep-alive, no limit).

    Each request is bounded by its own `connect_timeout` and `timeout` (the longest
    silence); one that sets neither gets the transport's defaults."""

    def __init__(self, connect_timeout: float | None, read_timeout: float | None) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: UpstreamRequest, *, stream: bool) -> AiohttpResponse:
        if self._session is None:
            await self.start()
        assert self._session is not None
        # Always a ClientTimeout: aiohttp reads `timeout=None` as no limit at all.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_limit(request.connect_timeout, self._timeout.connect),
            sock_read=_limit(request.timeout, self._timeout.sock_read),
        )
        try:
            response = await self._session.request(
                request.method,
                # Sent exactly as the provider built it (and, for SigV4, signed it).
                URL(request.url, encoded=True),
                data=request.stream if request.stream is not None else _payload(request.body),
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise classify(exc) from exc
        return AiohttpResponse(response, timeout.sock_read if stream else None)


def _limit(given: float | None, default: float | None) -> float | None:
    """A request's own limit (0: none at all), else the transport's default."""
    if given is None:
        return default
    return given or None


class AnswerTooLarge(Exception):
    """A whole answer went over `gateway.max_answer_bytes`."""


def _payload(body: bytes | None) -> Any:
    """The request body as aiohttp sends it (a large one without aiohttp's warning)."""
    if not body:
        return None
    if len(body) <= _LARGE_BODY:
        return body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return aiohttp.payload.BytesPayload(body)


async def read_bounded(response: UpstreamResponse, limit: int) -> bytes:
    """A whole answer, read as it arrives and dropped (the connection closed) once it goes
    over `limit` bytes, so an oversized answer never sits in memory whole. (An in-process
    transport's answer is in memory already: it is only measured.)"""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise AnswerTooLarge
    if not isinstance(response, AiohttpResponse):
        body = await response.read()
        if len(body) > limit:
            raise AnswerTooLarge
        return body
    pieces: list[bytes] = []
    size = 0
    async for chunk in response.iter_chunks():
        size += len(chunk)
        if size > limit:
            pieces.clear()
            raise AnswerTooLarge
        pieces.append(chunk)
    return b"".join(pieces)


def classify(exc: BaseException) -> UpstreamFailure:
    """A transport exception as an UpstreamFailure with a client-safe message."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return UpstreamFailure("tls", 502, "TLS handshake with the backend failed")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return UpstreamFailure("dns", 502, "the backend's host name does not resolve")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamFailure("connect", 502, "connection to the backend failed")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamFailure("connect_timeout", 504, "connecting to the backend timed out")
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamFailure("timeout", 504, "the backend did not answer in time")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamFailure("disconnect", 502, "the backend closed the connection")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamFailure("payload", 502, "the backend's answer was cut off")
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamFailure("protocol", 502, "the backend's answer is not valid HTTP")
    return UpstreamFailure("error", 502, f"request to the backend failed ({type(exc).__name__})")
