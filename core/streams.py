"""Streamed answers: the upstream's stream, through a source, into the client's stream.

The request path opens the upstream (with failover) before answering, so a stream starts
only once a backend has answered 2xx. The source is the same-API scanner of the client's wire
(`NativeStream`) or a translated `HubStream`. When the upstream breaks mid-stream and the
route has `failover.continue_streams`, the answer goes on with the next backend inside the
same client stream: it receives the partial answer as the assistant's words and an
instruction to continue. Otherwise the stream ends with an error event in the client's
format, never a hang. A client that goes away cancels the pump, which releases the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from modelway import timeouts
from modelway.attempts import Sent, open_upstream
from modelway.canonical import CanonicalRequest, Usage
from modelway.context import AttemptOutcome, RequestContext
from modelway.errors import GatewayError
from modelway.extension import Transport
from modelway.hubstream import HubStream
from modelway.ingress import NativeStream
from modelway.replies import Write
from modelway.upstream import UpstreamFailure

CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stopped: do not repeat "
    "anything already written and do not add any preamble."
)


class StreamSource(Protocol):
    error: GatewayError | None
    usage: Usage | None

    async def feed(self, data: bytes) -> bytes: ...

    async def close(self) -> bytes: ...

    def error_event(self, error: GatewayError) -> bytes: ...


def continuation_request(request: CanonicalRequest, partial: str) -> CanonicalRequest:
    """The request for a backup backend to continue `partial`."""
    messages = [
        *request.body.get("messages", []),
        {"role": "assistant", "content": partial},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    body = {**request.body, "messages": messages}
    return CanonicalRequest(
        request.operation, request.model, body, request.stream, request.client_wants_usage
    )


class LiveStreams:
    """The streams being sent, so that shutdown can cut them cleanly."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def cut(self) -> None:
        """End every live stream with an error event (the grace period is over)."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)


class StreamBody:
    """One streamed answer (a `StreamBody` of `modelway.replies`)."""

    def __init__(
        self,
        ctx: RequestContext,
        sent: Sent,
        source: StreamSource,
        transport: Transport,
        live: LiveStreams,
    ) -> None:
        self.ctx = ctx
        self.sent = sent
        self.source = source
        self.transport = transport
        self.live = live
        self._released = False
        self._client_gone = False

    def cancel(self) -> None:
        """The client went away: release the upstream now (the relay cancels `run`)."""
        self._client_gone = True
        self._release()

    async def run(self, write: Write) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.live.tasks.add(task)
        try:
            await self._pump(write)
        except asyncio.CancelledError:
            await self._cut(write)
            raise
        finally:
            self._release()
            self.live.tasks.discard(task)
            self.ctx.usage = self.source.usage or self.ctx.usage

    async def _pump(self, write: Write) -> None:
        while True:
            try:
                await self._copy(write)
                return
            except (UpstreamFailure, GatewayError) as exc:
                self._release()
                error = exc.as_error(self._backend) if isinstance(exc, UpstreamFailure) else exc
                self._report_break(error)
                if not await self._resume(error):
                    self.ctx.error = error
                    if not getattr(self.source, "error_forwarded", False):
                        await _quiet(write, self.source.error_event(error))
                    return
            except ConnectionError:
                if self.ctx.answered:
                    return
                self.ctx.error = GatewayError(
                    499, "the client closed the stream", "client_error", "client_closed"
                )
                return

    async def _copy(self, write: Write) -> None:
        source = self.source
        async with timeouts.before(self.sent.deadline):
            async for data in self.sent.response.iter_chunks():
                out = await source.feed(data)
                if source.usage is not None:
                    self.ctx.usage = source.usage  # before the client can see the end
                if getattr(source, "complete", False) and source.error is None:
                    # the end event goes to the client now: its closing after is no failure
                    self.ctx.answered = True
                if out:
                    self._first_byte()
                    await write(out)
                if source.error is not None:
                    raise source.error
        out = await source.close()
        if out:
            self._first_byte()
            await write(out)
        if source.error is not None:
            raise source.error
        self.ctx.answered = True

    def _first_byte(self) -> None:
        if self.ctx.timings.first_byte is None:
            self.ctx.timings.first_byte = time.monotonic()

    @property
    def _backend(self) -> str:
        return self.sent.attempt.backend.name

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.ctx.timings.upstream_end = time.monotonic()
            self.sent.response.release()

    async def _cut(self, write: Write) -> None:
        if self.ctx.answered:
            return
        if self._client_gone:
            self.ctx.error = GatewayError(
                499, "the client closed the stream", "client_error", "client_closed"
            )
            return
        self.ctx.error = GatewayError(
            503, "the gateway is shutting down", "server_error", "shutdown"
        )
        await _quiet(write, self.source.error_event(self.ctx.error))

    def _report_break(self, error: GatewayError) -> None:
        attempt = self.sent.attempt
        outcome = AttemptOutcome(False, error.status, "midstream", self._may_continue)
        attempt.outcome = outcome
        assert self.ctx.gateway is not None
        self.ctx.gateway.hooks.attempt_result(self.ctx, attempt, outcome)

    @property
    def _may_continue(self) -> bool:
        failover = self.ctx.route.config.failover if self.ctx.route else None
        return bool(failover and failover.continue_streams)

    async def _resume(self, error: GatewayError) -> bool:
        """Open the next backend to continue the answer; False if that cannot be done."""
        source = self.source
        if not (self._may_continue and getattr(source, "can_continue", False)):
            return False
        partial = "".join(getattr(source, "text", ()))
        request = continuation_request(self.ctx.hub(), partial)
        try:
            sent = await open_upstream(self.ctx, self.transport, hub=request)
        except GatewayError:
            return False
        assert sent.hub is not None
        self.sent, self._released = sent, False
        self.ctx.served_by = sent.attempt
        decoder = sent.attempt.backend.provider.stream_decoder(self.ctx, sent.hub)
        self.source = continued_source(self.ctx, source, decoder)
        self.ctx.annotations["continued"] = self.ctx.annotations.get("continued", 0) + 1
        return True


def continued_source(ctx: RequestContext, source: StreamSource, decoder: Any) -> StreamSource:
    """The source that carries a broken stream on with another backend's decoder."""
    if isinstance(source, HubStream):
        source.resume(decoder)
        return source
    assert ctx.api is not None
    hub = HubStream(
        ctx, decoder, [], ctx.api.stream_encoder(ctx), keep_usage=ctx.hub().client_wants_usage
    )
    hub.text = list(getattr(source, "text", ()))
    hub.resume(decoder, source.usage)
    return hub


class NativeSource:
    """A same-API `NativeStream` as a `StreamSource` (its `feed` and `close` are the
    stream's own, called with no wrapper on the per-chunk path)."""

    def __init__(self, stream: NativeStream) -> None:
        self.stream = stream
        self.feed: Callable[[bytes], Awaitable[bytes]] = stream.feed
        self.close: Callable[[], Awaitable[bytes]] = stream.close

    @property
    def error(self) -> GatewayError | None:
        return self.stream.error

    @property
    def usage(self) -> Usage | None:
        return self.stream.usage

    @property
    def complete(self) -> bool:
        """The end event passed (so the client's closing after it is no failure)."""
        return bool(getattr(self.stream, "complete", False))

    @property
    def error_forwarded(self) -> bool:
        return bool(getattr(self.stream, "error_forwarded", False))

    @property
    def can_continue(self) -> bool:
        return bool(getattr(self.stream, "can_continue", False))

    @property
    def text(self) -> list[str]:
        return list(getattr(self.stream, "text", ()))

    def error_event(self, error: GatewayError) -> bytes:
        return self.stream.error_event(error)


async def _quiet(write: Write, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        await write(data)
