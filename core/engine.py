"""The request path for mitmproxy flows: accept, decode, route, police, plan, send, finish.

The mitmproxy addon (modelway.addons.gateway) calls these methods from its event hooks and
does nothing else. Non-streamed answers are set on the flow whole; streamed ones are pointed
at the relay server, which produces the client's stream as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import re
import time
import uuid
from typing import Any

from aiohttp import web
from mitmproxy import http

from modelway.accesslog import access_record
from modelway.clients import KeyCheck, client_info
from modelway.context import RequestContext
from modelway.errors import GatewayError, not_found
from modelway.executor import complete, open_upstream
from modelway.extension import IngressAPI
from modelway.relay import RelayServer
from modelway.runtime import Gateway
from modelway.streaming import StreamPipeline
from modelway.upstream import HttpTransport, UpstreamFailure

logger = logging.getLogger("modelway")

CTX = "modelway_ctx"
RELAYED = "modelway_relayed"
TOO_LARGE = "modelway_too_large"
HEALTH_PATH = "/healthz"


class Engine:
    """Owns the live Gateway (swapped whole on reload), the upstream pool and the relay."""

    def __init__(self, gateway: Gateway) -> None:
        self.transport = HttpTransport(
            gateway.config.gateway.connect_timeout_seconds,
            gateway.config.gateway.upstream_timeout_seconds,
        )
        self.relay = RelayServer(self._relay_stream)
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self.gateway = gateway
        self._keys = KeyCheck([])
        self.forward = False
        self._streams: set[asyncio.Task[Any]] = set()
        self.use(gateway)

    def use(self, gateway: Gateway) -> None:
        self.gateway = gateway
        settings = gateway.config.gateway
        self._keys = KeyCheck(k.get_secret_value() for k in settings.api_keys)
        self._max_body = settings.max_body_bytes
        self._identity_header = settings.identity_header.lower()
        self._default_api = gateway.apis[0] if gateway.apis else None
        self._hosts: re.Pattern[str] | None = None
        if settings.mode == "forward" or self.forward:
            globs = gateway.intercept_hosts()
            self._hosts = re.compile("|".join(fnmatch.translate(g) for g in globs) or "(?!)")

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.transport.start()
        await self.relay.start()
        for backend in self.gateway.backends.values():
            await backend.provider.startup()
        self.gateway.hooks.startup(self.gateway)

    async def stop(self) -> None:
        self.gateway.hooks.shutdown(self.gateway)
        for backend in self.gateway.backends.values():
            await backend.provider.shutdown()
        await self.relay.stop()
        await self.transport.close()

    async def drain(self, grace_seconds: float) -> bool:
        """Wait until no request is in flight, at most `grace_seconds`; True if drained."""
        self.draining = True
        if self.inflight == 0:
            return True
        self._idle.clear()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            return False
        return True

    async def cut_streams(self) -> None:
        """End every stream still open with an error event the client can see."""
        for task in list(self._streams):
            task.cancel()
        await asyncio.sleep(0.2)  # let mitmproxy forward the final events to the clients
        await self.relay.stop()

    # ----------------------------------------------------------------------------- hooks

    def request_headers(self, flow: http.HTTPFlow) -> None:
        length = flow.request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._max_body:
            flow.metadata[TOO_LARGE] = True

    async def request(self, flow: http.HTTPFlow) -> None:
        if self._hosts is not None and not self._hosts.match(flow.request.pretty_host):
            return  # forward mode: not an LLM host, pass it through untouched
        ctx = self._context(flow)
        flow.metadata[CTX] = ctx
        self.inflight += 1
        try:
            await self._dispatch(flow, ctx)
        except GatewayError as error:
            self._answer_error(flow, ctx, error)
        except Exception:
            logger.exception("internal error on request %s", ctx.id)
            self._answer_error(
                flow,
                ctx,
                GatewayError(500, "internal gateway error", "server_error", "internal_error"),
            )

    def response_headers(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(RELAYED) and flow.response is not None:
            flow.response.stream = True

    def done(self, flow: http.HTTPFlow) -> None:
        ctx: RequestContext | None = flow.metadata.pop(CTX, None)
        if ctx is None:
            return
        ctx.timings.end = time.monotonic()
        if flow.response is not None:
            ctx.status = flow.response.status_code
        if flow.error is not None and ctx.error is None:
            ctx.error = GatewayError(499, flow.error.msg, "client_error", "connection_closed")
            ctx.status = ctx.status or 499
        if flow.metadata.get(RELAYED) and flow.error is not None:
            self.relay.forget(flow.request.path)
        try:
            self.gateway.hooks.request_done(ctx, access_record(ctx))
        except Exception:
            logger.exception("a request_done hook failed for request %s", ctx.id)
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    # ----------------------------------------------------------------------------- dispatch

    def _context(self, flow: http.HTTPFlow) -> RequestContext:
        request = flow.request
        headers = {k.lower(): v for k, v in request.headers.items()}
        address = flow.client_conn.peername[0] if flow.client_conn.peername else "unknown"
        return RequestContext(
            id=_request_id(headers.get("x-request-id")),
            method=request.method,
            path=request.path.split("?", 1)[0],
            host=request.pretty_host,
            headers=headers,
            client=client_info(address, headers, self._identity_header),
            gateway=self.gateway,
            flow=flow,
        )

    async def _dispatch(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        gateway = self.gateway
        if ctx.path == HEALTH_PATH:
            self._answer(flow, ctx, 200, b'{"status":"ok"}', "application/json")
            return
        api = self._find_endpoint(ctx)
        self._keys.verify(ctx.client)
        assert ctx.endpoint is not None
        if ctx.endpoint.local:
            answer = api.local_answer(ctx.endpoint, ctx, gateway)
            self._answer(flow, ctx, answer.status, answer.body, answer.content_type)
            return
        body = flow.request.raw_content or b""
        if flow.metadata.get(TOO_LARGE) or len(body) > self._max_body:
            raise GatewayError(
                413,
                f"request body is larger than the gateway's limit of {self._max_body} bytes",
                code="request_too_large",
            )
        ctx.request = api.decode(ctx.endpoint, body, ctx.headers)
        await self._route_and_police(ctx)
        if ctx.request.stream:
            self._point_at_relay(flow, ctx)
            return
        result = await complete(gateway, self.transport, ctx)
        self._answer(flow, ctx, result.status, api.encode_response(ctx, result), "application/json")

    def _find_endpoint(self, ctx: RequestContext) -> IngressAPI:
        for api in self.gateway.apis:
            endpoint = api.match(ctx.method, ctx.path)
            if endpoint is not None:
                ctx.api, ctx.endpoint = api, endpoint
                return api
        owner = next((a for a in self.gateway.apis if a.claims(ctx.path)), self._default_api)
        ctx.api = owner
        if owner is not None and owner.claims(ctx.path):
            raise GatewayError(
                405, f"method {ctx.method} is not allowed on {ctx.path}", code="method_not_allowed"
            )
        raise not_found(
            f"unknown path {ctx.path}: this gateway serves "
            + ", ".join(path for api in self.gateway.apis for path in api.paths),
            code="unknown_url",
        )

    async def _route_and_police(self, ctx: RequestContext) -> None:
        assert ctx.request is not None
        route = self.gateway.match_route(ctx.request.model, ctx.path, ctx.headers, ctx.host)
        if route is None:
            raise not_found(
                f"the model '{ctx.request.model}' does not exist or no route serves it",
                code="model_not_found",
            )
        ctx.route = route
        self.gateway.hooks.request_received(ctx)
        for policy in route.policies:
            decision = await policy.on_request(ctx)
            if decision is not None and not decision.allowed:
                raise decision.as_error()
        ctx.plan = self.gateway.hooks.plan(ctx, route)
        if ctx.plan is None or not ctx.plan.attempts:
            raise GatewayError(
                503, f"route '{route.name}' has no backend to try", "server_error", "no_backend"
            )

    # ----------------------------------------------------------------------------- answers

    def _answer(
        self,
        flow: http.HTTPFlow,
        ctx: RequestContext,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        ctx.status = status
        headers = {
            "content-type": content_type,
            "x-request-id": ctx.id,
            "request-id": ctx.id,
            **self._served_headers(ctx),
            **(extra or {}),
        }
        if self.draining:
            headers["connection"] = "close"
        flow.response = http.Response.make(status, body, headers)

    def _answer_error(self, flow: http.HTTPFlow, ctx: RequestContext, error: GatewayError) -> None:
        ctx.error = error
        api = ctx.api or self._default_api
        if api is None:
            body = json.dumps({"error": {"message": error.message}}).encode()
            self._answer(flow, ctx, error.status, body, "application/json", error.headers)
            return
        headers = api.error_headers(error)
        content_type = headers.pop("content-type", "application/json")
        self._answer(flow, ctx, error.status, api.error_body(error), content_type, headers)

    @staticmethod
    def _served_headers(ctx: RequestContext) -> dict[str, str]:
        out = {}
        if ctx.route is not None:
            out["x-modelway-route"] = ctx.route.name
        if ctx.served_by is not None:
            out["x-modelway-backend"] = ctx.served_by.backend.name
            if ctx.served_by.variant:
                out["x-modelway-variant"] = ctx.served_by.variant
        return out

    # ----------------------------------------------------------------------------- streams

    def _point_at_relay(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        request = flow.request
        path = self.relay.register(ctx)
        request.scheme, request.host, request.port = "http", "127.0.0.1", self.relay.port
        request.method, request.path = "POST", path
        request.headers = http.Headers(host=f"127.0.0.1:{self.relay.port}", content_length="0")
        request.content = b""
        flow.metadata[RELAYED] = True

    async def _relay_stream(
        self, ctx: RequestContext, web_request: web.Request
    ) -> web.StreamResponse:
        api = ctx.api
        assert api is not None and ctx.request is not None
        try:
            attempt, request, upstream = await open_upstream(self.gateway, self.transport, ctx)
        except GatewayError as error:
            return self._relay_error(ctx, api, error)
        content_type = upstream.headers.get("content-type", "")
        if not any(t in content_type for t in attempt.backend.provider.stream_content_types):
            upstream.release()
            return self._relay_error(
                ctx,
                api,
                GatewayError(
                    502,
                    f"backend '{attempt.backend.name}' did not answer with a stream",
                    "server_error",
                    "upstream_not_streaming",
                ),
            )
        ctx.served_by = attempt
        encoder = api.stream_encoder(ctx)
        filters = [
            f for p in (ctx.route.policies if ctx.route else ()) if (f := p.stream_filter(ctx))
        ]
        pipeline = StreamPipeline(
            ctx, attempt.backend.provider.stream_decoder(ctx, request), filters, encoder
        )
        response = web.StreamResponse(
            status=200,
            headers={
                "content-type": encoder.content_type,
                "cache-control": "no-cache",
                "x-request-id": ctx.id,
                "request-id": ctx.id,
                **self._served_headers(ctx),
            },
        )
        await response.prepare(web_request)
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            await self._pump(ctx, upstream, pipeline, response, attempt.backend.name)
        finally:
            self._streams.discard(task)
        return response

    async def _pump(
        self,
        ctx: RequestContext,
        upstream: Any,
        pipeline: StreamPipeline,
        response: web.StreamResponse,
        backend: str,
    ) -> None:
        try:
            async for data in upstream.iter_chunks():
                out = await pipeline.feed(data)
                if out:
                    await response.write(out)
                if pipeline.error is not None:
                    raise pipeline.error
            await response.write(await pipeline.close())
            if pipeline.error is not None:
                raise pipeline.error
        except (UpstreamFailure, GatewayError) as exc:
            error = exc.as_error(backend) if isinstance(exc, UpstreamFailure) else exc
            ctx.error = error
            await self._write_quietly(response, pipeline.encoder.error(error))
        except ConnectionError:
            ctx.error = GatewayError(
                499, "the client closed the stream", "client_error", "client_closed"
            )
        except asyncio.CancelledError:
            # The shutdown grace period ran out: tell the client why its stream ends.
            ctx.error = GatewayError(
                503, "the gateway is shutting down", "server_error", "shutdown"
            )
            await self._write_quietly(response, pipeline.encoder.error(ctx.error))
            await self._write_quietly(response, b"", eof=True)
            raise
        finally:
            upstream.release()
        await self._write_quietly(response, b"", eof=True)

    @staticmethod
    async def _write_quietly(response: web.StreamResponse, data: bytes, eof: bool = False) -> None:
        with contextlib.suppress(ConnectionError):
            await (response.write_eof() if eof else response.write(data))

    def _relay_error(
        self, ctx: RequestContext, api: IngressAPI, error: GatewayError
    ) -> web.Response:
        ctx.error = error
        headers = {
            **api.error_headers(error),
            "x-request-id": ctx.id,
            "request-id": ctx.id,
            **self._served_headers(ctx),
        }
        return web.Response(status=error.status, body=api.error_body(error), headers=headers)


def _request_id(given: str | None) -> str:
    """The client's request id when it is a sane token, else a fresh one."""
    if given and len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex
