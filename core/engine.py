"""The gateway's side of mitmproxy: every flow to the request path, every answer to its flow.

The mitmproxy addon (modelway.addons.gateway) calls these methods from its event hooks and
does nothing else. A whole answer is set on the flow; a streamed one is pointed at the relay,
which sends it as it is produced. Whatever happens, a request that reached the engine is
answered by the gateway: it never falls through to mitmproxy's own upstream (the reverse
target) unless forward mode's `unmatched: pass` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import re
import time
import uuid

from mitmproxy import connection, http

from modelway.accesslog import access_record
from modelway.clientguard import ClientGuard
from modelway.clients import client_info, take_query_key
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.protocolerrors import HeaderLimit
from modelway.relay import Job, RelayServer
from modelway.replies import Reply, StreamReply, minimal_error_body
from modelway.requestpath import Passed, RequestPath
from modelway.runtime import Gateway
from modelway.services import Services
from modelway.statestore import close_store
from modelway.streams import LiveStreams
from modelway.uploads import Upload, UploadBody, streamable_head
from modelway.upstream import HttpTransport

logger = logging.getLogger("modelway")

CTX = "modelway_ctx"
RELAYED = "modelway_relayed"
TOO_LARGE = "modelway_too_large"
UPLOADING = "modelway_uploading"
_FRAMING = (b"content-length", b"transfer-encoding", b"expect")
WATCH_SECONDS = 0.25
"""How often waiting requests are checked for a client that went away."""


class Engine:
    """Owns the live Gateway (swapped whole on reload), the upstream pool and the relay."""

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.config.gateway
        self.transport = HttpTransport(settings.timeouts.connect, settings.timeouts.idle)
        self.live = LiveStreams()
        self.path = RequestPath(self.transport, self.live)
        self.relay = RelayServer()
        self.clients = ClientGuard(settings.clients)
        self.services: Services = gateway.services
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self.forward = False
        self._waiting: dict[str, tuple[connection.Client, asyncio.Task[object]]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.gateway = gateway
        self.use(gateway)

    def use(self, gateway: Gateway) -> None:
        gateway.services = self.services
        self.gateway = gateway
        settings = gateway.config.gateway
        self._identity_header = settings.identity_header.lower()
        self.clients.limits = settings.clients
        HeaderLimit.max_bytes = settings.clients.max_header_bytes
        self._hosts: re.Pattern[str] | None = None
        if settings.mode == "forward" or self.forward:
            globs = gateway.intercept_hosts()
            self._hosts = re.compile("|".join(fnmatch.translate(g) for g in globs) or "(?!)")

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.transport.start()
        await self.relay.start()
        await _start(self.gateway)
        self._watcher = asyncio.get_running_loop().create_task(self._watch_clients())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        for task in list(self._retiring):
            task.cancel()
        await stop_gateway(self.gateway)
        await self.relay.stop()
        await self.transport.close()
        await close_store(self.services)

    async def adopt(self, gateway: Gateway) -> None:
        """Switch to a reloaded configuration: start it, serve new requests with it, and
        retire the previous one once its in-flight requests can have finished."""
        await _start(gateway, hooks=False)
        old = self.gateway
        self.use(gateway)
        gateway.hooks.startup(gateway)
        logger.info("configuration reloaded from %s", gateway.source.name)
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire(old: Gateway) -> None:
        await asyncio.sleep(old.config.gateway.shutdown_grace_seconds)
        await stop_gateway(old)

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
        await self.live.cut()
        await self.relay.stop()

    # ----------------------------------------------------------------------------- hooks

    def request_headers(self, flow: http.HTTPFlow) -> None:
        self.clients.headers_read(flow.client_conn)
        request = flow.request
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.gateway.config.gateway.max_body_bytes:
            flow.metadata[TOO_LARGE] = True
        elif self._hosts is None and streamable_head(
            request.method, request.headers, request.http_version
        ):
            self._stream_upload(flow)

    def _stream_upload(self, flow: http.HTTPFlow) -> None:
        """A pass-through upload: its body streams through the relay to the backend, and the
        request path runs there (keys, route, send) as soon as the relay is asked."""
        try:
            ctx = self._context(flow)
            if not self.path.is_upload(ctx):
                return
        except Exception as exc:  # the `request` hook answers it as any other request
            logger.warning("an upload's head could not be read (%s)", type(exc).__name__)
            return
        self.inflight += 1
        flow.metadata[CTX] = ctx
        flow.metadata[UPLOADING] = True
        limit = self.gateway.config.gateway.max_body_bytes
        job = Upload(lambda body: self._run_upload(ctx, body), limit)
        request = flow.request
        kept = [(k, v) for k, v in request.headers.fields if k.lower() in _FRAMING]
        self._point_at_relay(flow, job)
        request.headers = http.Headers([(b"host", b"127.0.0.1:%d" % self.relay.port), *kept])
        request.stream = True

    async def _run_upload(self, ctx: RequestContext, body: UploadBody) -> Reply | StreamReply:
        ctx.upload = body
        return await self.path.handle(ctx, b"", too_large=False, forward=False)

    async def request(self, flow: http.HTTPFlow) -> None:
        self.clients.request_read(flow.client_conn)
        if flow.metadata.get(UPLOADING):
            return  # answered through the relay, which had its body
        try:
            if self._other_host(flow):
                return
        except Exception as exc:  # a host mitmproxy parsed but Python cannot read
            logger.warning("a request's host could not be read (%s)", type(exc).__name__)
            _answer_minimal(flow, 400, "the request's host is not valid")
            return
        self.inflight += 1
        ctx: RequestContext | None = None
        try:
            ctx = self._context(flow)
            flow.metadata[CTX] = ctx
            await self._serve(flow, ctx)
        except Passed:
            return
        except BaseException as exc:  # the flow must be answered whatever happened
            if ctx is not None:
                ctx.status = 500
            logger.error("internal error answering a request (%s)", type(exc).__name__)
            _answer_minimal(flow, 500, "internal gateway error")
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if ctx is None:  # `done` will not see this flow: it is over here
                self._finished()
            passed = ctx is not None and ctx.annotations.get("unmatched") == "passed"
            if flow.response is None and not flow.metadata.get(RELAYED) and not passed:
                _answer_minimal(flow, 502, "the gateway could not answer this request")

    def _other_host(self, flow: http.HTTPFlow) -> bool:
        """Forward mode, a host that is not an LLM host: True when it may pass untouched
        (`gateway.plain_http: pass`); otherwise it is refused here."""
        if self._hosts is None or self._hosts.match(flow.request.pretty_host):
            return False
        if self.gateway.config.gateway.plain_http == "pass":
            return True
        _answer_minimal(
            flow,
            403,
            "this proxy forwards plain HTTP only to LLM hosts (gateway.plain_http: deny)",
            "plain_http_denied",
        )
        return True

    def allows_connection(self, address: tuple[str, int] | None) -> bool:
        """Whether mitmproxy may open a connection to `address`. The gateway sends to
        backends itself: mitmproxy connects only to the relay, and in forward mode to hosts
        it tunnels or passes untouched (never to an intercepted host unless `unmatched:
        pass`). Whatever fails in the engine, no request reaches the reverse target."""
        if address is None:
            return False
        host, port = address[0], address[1]
        if host == "127.0.0.1" and port == self.relay.port:
            return True
        if self._hosts is None:
            return False
        if self._hosts.match(host):
            return self.gateway.config.gateway.unmatched == "pass"
        return True

    async def _serve(self, flow: http.HTTPFlow, ctx: RequestContext) -> None:
        body = flow.request.raw_content or b""
        early = asyncio.get_running_loop().create_future()

        def streaming() -> None:
            if not early.done():
                early.set_result(None)

        work = asyncio.ensure_future(
            self.path.handle(
                ctx,
                body,
                too_large=bool(flow.metadata.get(TOO_LARGE)),
                forward=self._hosts is not None,
                trailers=flow.request.trailers is not None,
                streaming=streaming,
            )
        )
        work.add_done_callback(lambda _: streaming())
        self._waiting[flow.id] = (flow.client_conn, work)
        try:
            await early
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            self._waiting.pop(flow.id, None)
        if not work.done():  # a stream whose upstream is being asked: the relay waits for it
            self._point_at_relay(flow, work)
        elif work.cancelled():  # the client went away: nobody is left to answer
            ctx.error = GatewayError(499, "the client went away", "client_error", "client_gone")
            _answer_minimal(flow, 499, "the client went away")
        elif isinstance(result := work.result(), StreamReply):
            self._point_at_relay(flow, result)
        else:
            self._answer(flow, result)

    def response_headers(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(RELAYED) and flow.response is not None:
            flow.response.stream = True
            if self.draining:
                flow.response.headers["connection"] = "close"

    def done(self, flow: http.HTTPFlow) -> None:
        self.clients.answered(flow.client_conn)
        ctx: RequestContext | None = flow.metadata.pop(CTX, None)
        if ctx is None:
            return
        ctx.timings.end = time.monotonic()
        if flow.response is not None and ctx.status is None:
            ctx.status = flow.response.status_code
        if flow.error is not None and ctx.error is None and not ctx.answered:
            ctx.error = GatewayError(499, flow.error.msg, "client_error", "connection_closed")
            ctx.status = ctx.status or 499
        if flow.metadata.get(RELAYED) and flow.error is not None:
            self.relay.drop(flow.request.path)
        gateway = ctx.gateway or self.gateway
        try:
            gateway.hooks.request_done(ctx, access_record(ctx))
        except Exception as exc:
            logger.error(
                "a request_done hook failed for request %s (%s)", ctx.id, type(exc).__name__
            )
        finally:
            self._finished()

    def _finished(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    # ----------------------------------------------------------------------------- helpers

    def _context(self, flow: http.HTTPFlow) -> RequestContext:
        request = flow.request
        headers = _lower_headers(request.headers)
        address = flow.client_conn.peername[0] if flow.client_conn.peername else "unknown"
        path, _, query = request.path.partition("?")
        query = take_query_key(query, headers)
        return RequestContext(
            id=_request_id(headers.get("x-request-id")),
            method=request.method,
            path=path,
            host=request.pretty_host,
            headers=headers,
            client=client_info(address, headers, self._identity_header),
            query=query,
            gateway=self.gateway,
        )

    def _answer(self, flow: http.HTTPFlow, result: Reply) -> None:
        headers = dict(result.headers)
        if self.draining:
            headers["connection"] = "close"
        try:
            flow.response = http.Response.make(result.status, result.body, headers)
        except (ValueError, UnicodeError) as exc:
            logger.error("an answer could not be encoded (%s)", type(exc).__name__)
            _answer_minimal(flow, result.status, "the gateway's answer could not be encoded")

    def _point_at_relay(self, flow: http.HTTPFlow, job: Job) -> None:
        request = flow.request
        path = self.relay.register(job)
        request.scheme, request.host, request.port = "http", "127.0.0.1", self.relay.port
        request.method, request.path = "POST", path
        request.headers = http.Headers(host=f"127.0.0.1:{self.relay.port}", content_length="0")
        request.content = b""
        flow.metadata[RELAYED] = True

    async def _watch_clients(self) -> None:
        """Cancel the work of requests whose client connection closed (EOF)."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            self.clients.sweep()
            for client, work in list(self._waiting.values()):
                if not (client.state & connection.ConnectionState.CAN_READ) and not work.done():
                    work.cancel()


async def _start(gateway: Gateway, hooks: bool = True) -> None:
    for backend in gateway.backends.values():
        await backend.provider.startup()
    for policy in gateway.policies():
        await policy.startup(gateway)
    if hooks:
        gateway.hooks.startup(gateway)


async def stop_gateway(gateway: Gateway) -> None:
    """Shut one configuration down: hooks, policies, providers; once only."""
    if gateway.hooks.shut_down:
        return
    gateway.hooks.shutdown(gateway)
    for policy in gateway.policies():
        with contextlib.suppress(Exception):
            await policy.shutdown()
    for backend in gateway.backends.values():
        await backend.provider.shutdown()


def _answer_minimal(
    flow: http.HTTPFlow, status: int, message: str, code: str = "gateway_error"
) -> None:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = minimal_error_body(GatewayError(status, message, kind, code))
    flow.response = http.Response.make(status, body, {"content-type": "application/json"})


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
    if given and len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex
