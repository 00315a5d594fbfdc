"""The request path for mitmproxy flows: accept, decode, route, police, plan, send, finish.

The mitmproxy addon (modelway.addons.gateway) calls these methods from its event hooks and
does nothing else. Non-streamed answers are set on the flow whole; streamed ones are pointed
at the relay server, which produces the client's stream as it arrives.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import re
import time
import uuid
from typing import Any

from mitmproxy import http

from modelway.accesslog import access_record
from modelway.clients import KeyCheck, client_info
from modelway.context import RequestContext
from modelway.errors import GatewayError, not_found
from modelway.executor import complete
from modelway.extension import IngressAPI
from modelway.relay import RelayServer
from modelway.runtime import Gateway
from modelway.streamjobs import StreamJobs, served_headers
from modelway.upstream import HttpTransport

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
        self.streams = StreamJobs(self)
        self.relay = RelayServer(self.streams.serve)
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self.gateway = gateway
        self._keys = KeyCheck([])
        self.forward = False
        self.shared: dict[str, Any] = gateway.shared
        self._retiring: asyncio.Task[None] | None = None
        self.use(gateway)

    def use(self, gateway: Gateway) -> None:
        if gateway.shared is not self.shared:  # built without the engine's shared state
            for key, value in gateway.shared.items():
                self.shared.setdefault(key, value)
            gateway.shared = self.shared
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

    async def adopt(self, gateway: Gateway) -> None:
        """Switch to a reloaded configuration: start it, serve new requests with it, and
        retire the previous one once its in-flight requests can have finished."""
        for backend in gateway.backends.values():
            await backend.provider.startup()
        old = self.gateway
        self.use(gateway)
        gateway.hooks.startup(gateway)
        logger.info("configuration reloaded from %s", gateway.source.name)
        self._retiring = asyncio.get_running_loop().create_task(self._retire(old))

    @staticmethod
    async def _retire(old: Gateway) -> None:
        await asyncio.sleep(old.config.gateway.shutdown_grace_seconds)
        old.hooks.shutdown(old)
        for backend in old.backends.values():
            await backend.provider.shutdown()

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
        await self.streams.cut()
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
        headers = _lower_headers(request.headers)
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
        try:
            api = self._find_endpoint(ctx)
        except GatewayError as error:
            if self._passes_unmatched(ctx, error):
                return
            raise
        self._keys.verify(ctx.client)
        assert ctx.endpoint is not None
        if ctx.endpoint.local and self._hosts is not None:
            # forward mode: the real host answers its own models list, not the gateway
            own = not_found(f"{ctx.path} is the provider's own endpoint", code="unknown_url")
            if self._passes_unmatched(ctx, own):
                return
        if ctx.endpoint.local:
            answer = await api.local_answer_async(ctx.endpoint, ctx, gateway)
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
        try:
            await self._route_and_police(ctx)
        except _NoRoute as error:
            if self._passes_unmatched(ctx, error.error):
                return
            raise error.error from None
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

    def _passes_unmatched(self, ctx: RequestContext, error: GatewayError) -> bool:
        """Forward mode, nothing matched: True to let the request through untouched;
        raises the configured denial otherwise. Reverse mode: False (answer `error`)."""
        if self._hosts is None:
            return False
        if self.gateway.config.gateway.unmatched == "pass":
            ctx.annotations["unmatched"] = "passed"
            return True
        raise GatewayError(
            403,
            f"{error.message}; the gateway denies requests to {ctx.host} that match no route",
            "invalid_request_error",
            "unmatched_denied",
        )

    async def _route_and_police(self, ctx: RequestContext) -> None:
        assert ctx.request is not None
        route = self.gateway.match_route(ctx.request.model, ctx.path, ctx.headers, ctx.host)
        if route is None:
            raise _NoRoute(
                not_found(
                    f"the model '{ctx.request.model}' does not exist or no route serves it",
                    code="model_not_found",
                )
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
            **served_headers(ctx),
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

    # ----------------------------------------------------------------------------- streams

    def _point_at_relay(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        request = flow.request
        path = self.relay.register(ctx)
        request.scheme, request.host, request.port = "http", "127.0.0.1", self.relay.port
        request.method, request.path = "POST", path
        request.headers = http.Headers(host=f"127.0.0.1:{self.relay.port}", content_length="0")
        request.content = b""
        flow.metadata[RELAYED] = True


class _NoRoute(Exception):
    def __init__(self, error: GatewayError) -> None:
        self.error = error


def _lower_headers(headers: http.Headers) -> dict[str, str]:
    """Headers as a plain dict with lower-case names, in one pass over the raw fields
    (`Headers.items()` searches all fields again for each name). Repeated headers are
    joined with ", ", as `Headers` itself reads them."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers.fields:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("utf-8", "surrogateescape")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _request_id(given: str | None) -> str:
    """The client's request id when it is a sane token, else a fresh one."""
    if given and len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex
