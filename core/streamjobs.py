"""Streamed answers, served to mitmproxy through the relay server.

For each streaming request: open the upstream (attempts in plan order until one answers),
then pump its bytes through the request's StreamPipeline into the client's stream. When the
upstream breaks mid-stream and the route has `failover.continue_streams`, the answer carries
on with the next backend inside the same client stream: it receives the partial answer as
the assistant's words and an instruction to continue. Otherwise the stream ends with an error
event the client can see, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiohttp import web

from modelway.canonical import CanonicalRequest
from modelway.context import Attempt, AttemptOutcome, RequestContext
from modelway.errors import GatewayError
from modelway.executor import open_upstream
from modelway.extension import IngressAPI, UpstreamResponse
from modelway.streaming import StreamPipeline
from modelway.upstream import UpstreamFailure

if TYPE_CHECKING:
    from modelway.engine import Engine

CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stopped: do not repeat "
    "anything already written and do not add any preamble."
)


def served_headers(ctx: RequestContext) -> dict[str, str]:
    out = {"x-request-id": ctx.id, "request-id": ctx.id}
    if ctx.route is not None:
        out["x-modelway-route"] = ctx.route.name
    if ctx.served_by is not None:
        out["x-modelway-backend"] = ctx.served_by.backend.name
        if ctx.served_by.variant:
            out["x-modelway-variant"] = ctx.served_by.variant
    return out


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


class StreamJobs:
    """Serves the relay's requests; tracks live streams so shutdown can cut them cleanly."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tasks: set[asyncio.Task[Any]] = set()

    async def serve(self, ctx: RequestContext, web_request: web.Request) -> web.StreamResponse:
        api = ctx.api
        assert api is not None and ctx.request is not None
        try:
            attempt, upstream, decoder = await self._open(ctx)
        except GatewayError as error:
            return _error_response(ctx, api, error)
        encoder = api.stream_encoder(ctx)
        filters = [
            f for p in (ctx.route.policies if ctx.route else ()) if (f := p.stream_filter(ctx))
        ]
        pipeline = StreamPipeline(ctx, decoder, filters, encoder)
        response = web.StreamResponse(
            status=200,
            headers={
                "content-type": encoder.content_type,
                "cache-control": "no-cache",
                **served_headers(ctx),
            },
        )
        await response.prepare(web_request)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._pump(ctx, attempt, upstream, pipeline, response)
        finally:
            self.tasks.discard(task)
        return response

    async def cut(self) -> None:
        """End every live stream with an error event (the grace period is over)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.sleep(0.2)  # let mitmproxy forward the final events to the clients

    async def _open(self, ctx: RequestContext) -> tuple[Attempt, UpstreamResponse, Any]:
        """An upstream stream that answered, with a decoder for it; raises GatewayError."""
        engine = self.engine
        attempt, request, upstream = await open_upstream(engine.gateway, engine.transport, ctx)
        provider = attempt.backend.provider
        content_type = upstream.headers.get("content-type", "")
        if not any(t in content_type for t in provider.stream_content_types):
            upstream.release()
            raise GatewayError(
                502,
                f"backend '{attempt.backend.name}' did not answer with a stream",
                "server_error",
                "upstream_not_streaming",
            )
        ctx.served_by = attempt
        return attempt, upstream, provider.stream_decoder(ctx, request)

    async def _pump(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        upstream: UpstreamResponse,
        pipeline: StreamPipeline,
        response: web.StreamResponse,
    ) -> None:
        while True:
            try:
                await self._copy(upstream, pipeline, response)
                upstream.release()
                break
            except (UpstreamFailure, GatewayError) as exc:
                upstream.release()
                error = (
                    exc.as_error(attempt.backend.name) if isinstance(exc, UpstreamFailure) else exc
                )
                self._report_break(ctx, attempt, error)
                resumed = await self._resume(ctx, pipeline, error)
                if resumed is None:
                    ctx.error = error
                    await _write(response, pipeline.encoder.error(error))
                    break
                attempt, upstream = resumed
            except ConnectionError:
                upstream.release()
                ctx.error = GatewayError(
                    499, "the client closed the stream", "client_error", "client_closed"
                )
                break
            except asyncio.CancelledError:
                upstream.release()
                ctx.error = GatewayError(
                    503, "the gateway is shutting down", "server_error", "shutdown"
                )
                await _write(response, pipeline.encoder.error(ctx.error))
                await _write(response, b"", eof=True)
                raise
        await _write(response, b"", eof=True)

    @staticmethod
    async def _copy(
        upstream: UpstreamResponse, pipeline: StreamPipeline, response: web.StreamResponse
    ) -> None:
        async for data in upstream.iter_chunks():
            out = await pipeline.feed(data)
            if out:
                await response.write(out)
            if pipeline.error is not None:
                raise pipeline.error
        await response.write(await pipeline.close())
        if pipeline.error is not None:
            raise pipeline.error

    def _report_break(self, ctx: RequestContext, attempt: Attempt, error: GatewayError) -> None:
        outcome = AttemptOutcome(False, error.status, "midstream", self._may_continue(ctx))
        attempt.outcome = outcome
        self.engine.gateway.hooks.attempt_result(ctx, attempt, outcome)

    @staticmethod
    def _may_continue(ctx: RequestContext) -> bool:
        failover = ctx.route.config.failover if ctx.route else None
        return bool(failover and failover.continue_streams)

    async def _resume(
        self, ctx: RequestContext, pipeline: StreamPipeline, error: GatewayError
    ) -> tuple[Attempt, UpstreamResponse] | None:
        """Open the next backend to continue the answer, or None if that cannot be done."""
        if not (self._may_continue(ctx) and pipeline.can_continue) or ctx.request is None:
            return None
        original = ctx.request
        ctx.request = continuation_request(original, "".join(pipeline.text))
        try:
            attempt, upstream, decoder = await self._open(ctx)
        except GatewayError:
            return None
        finally:
            ctx.request = original
        pipeline.resume(decoder)
        ctx.annotations["continued"] = ctx.annotations.get("continued", 0) + 1
        return attempt, upstream


def _error_response(ctx: RequestContext, api: IngressAPI, error: GatewayError) -> web.Response:
    ctx.error = error
    headers = {**api.error_headers(error), **served_headers(ctx)}
    return web.Response(status=error.status, body=api.error_body(error), headers=headers)


async def _write(response: web.StreamResponse, data: bytes, eof: bool = False) -> None:
    with contextlib.suppress(ConnectionError):
        await (response.write_eof() if eof else response.write(data))
