"""The one request path, streamed or not: decode, route, police, plan, send, answer.

`RequestPath.handle` turns a request context and its body into a `Reply` (a whole answer)
or a `StreamReply` (a stream the relay sends), never raising: every failure, a plugin's
included, becomes an error in the client's API shape. Every hook of a request runs on the
configuration it started on (`ctx.gateway`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from modelway import jsonx, timeouts
from modelway.answers import native_answer, translated_answer
from modelway.attempts import NATIVE, Sent, open_upstream, read_failed
from modelway.clients import basic_password
from modelway.context import RequestContext
from modelway.counting import estimate_reply
from modelway.errors import GatewayError, body_too_large, not_found, upstream_error
from modelway.extension import Transport
from modelway.followups import open_follow_up
from modelway.hubstream import HubStream
from modelway.ingress import IngressAPI, LocalEndpoint
from modelway.nativestream import RawStream
from modelway.plugin_errors import describe_failure
from modelway.replies import Reply, StreamReply, error_reply, reply, served_headers
from modelway.runtime import Gateway
from modelway.streams import LiveStreams, NativeSource, StreamBody, StreamSource
from modelway.upstream import AnswerTooLarge, UpstreamFailure, read_bounded
from modelway.wire import PASSTHROUGH

logger = logging.getLogger("modelway")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"


class Passed(Exception):
    """Forward mode: the request matched nothing and `unmatched: pass` lets it through."""


def _client_first(
    apis: list[IngressAPI], ctx: RequestContext
) -> tuple[list[IngressAPI], list[IngressAPI]]:
    """The APIs in order, those that recognize the request as their client's first; and those."""
    own = [api for api in apis if api.recognizes(ctx.path, ctx.headers)]
    return ([*own, *(api for api in apis if api not in own)] if own else apis), own


class NoRoute(Exception):
    def __init__(self, error: GatewayError) -> None:
        self.error = error


class RequestPath:
    """The stages every request goes through; the engine gives it each mitmproxy request."""

    def __init__(self, transport: Transport, live: LiveStreams) -> None:
        self.transport = transport
        self.live = live
        self.loopback = True
        """Whether the gateway listens on loopback only (admin endpoints without admin
        keys are served there only)."""

    async def handle(
        self,
        ctx: RequestContext,
        body: bytes,
        *,
        too_large: bool,
        forward: bool,
        trailers: bool = False,
        streaming: Callable[[], None] | None = None,
    ) -> Reply | StreamReply:
        """The answer for one request; raises `Passed` only for an explicit forward pass.
        `streaming` is called when a streamed request is about to ask its upstream (the
        engine points the flow at the relay then, before the answer exists)."""
        try:
            return await self._handle(ctx, body, too_large, forward, trailers, streaming)
        except Passed:
            raise
        except GatewayError as error:
            return error_reply(ctx, error)
        except Exception as exc:
            logger.error("internal error on request %s: %s", ctx.id, describe_failure(exc, ctx))
            internal = GatewayError(500, "internal gateway error", "server_error", "internal_error")
            return error_reply(ctx, internal)

    async def _handle(
        self,
        ctx: RequestContext,
        body: bytes,
        too_large: bool,
        forward: bool,
        trailers: bool,
        streaming: Callable[[], None] | None,
    ) -> Reply | StreamReply:
        gateway = ctx.gateway
        assert gateway is not None
        if ctx.path == HEALTH_PATH:
            return reply(ctx, 200, b'{"status":"ok"}', "application/json")
        if ctx.path == READY_PATH:
            return await self._ready(ctx, gateway)
        if not forward:
            local = gateway.local_endpoint(ctx.method, ctx.path.rstrip("/") or "/")
            if local is not None:
                ctx.body = body
                return await self._local(ctx, gateway, local)
            if any(e.path == ctx.path.rstrip("/") for e in gateway.local_endpoints):
                raise GatewayError(
                    405,
                    f"method {ctx.method} is not allowed on {ctx.path}",
                    code="method_not_allowed",
                )
        api = self._find_api(ctx, gateway, forward)
        if trailers:
            raise GatewayError(
                400, "HTTP trailers are not supported: send the body without them", code="trailers"
            )
        open_follow_up(ctx, gateway)
        await _authenticate(ctx, gateway)
        assert ctx.endpoint is not None
        if ctx.endpoint.local:
            answer = await api.local_answer(ctx.endpoint, ctx, gateway)
            return reply(ctx, answer.status, answer.body, answer.content_type)
        if too_large or len(body) > gateway.config.gateway.max_body_bytes:
            raise body_too_large(gateway.config.gateway.max_body_bytes)
        self._decode(ctx, api, body)
        await api.prepare(ctx)
        try:
            await self._route_and_police(ctx, gateway, forward)
        except NoRoute as error:
            if forward:
                self._unmatched(ctx, gateway, error.error)
            raise error.error from None
        return await self._send(ctx, streaming)

    def is_upload(self, ctx: RequestContext) -> bool:
        """Whether a request, from its head alone, goes to a pass-through endpoint that a
        route takes by its path (reverse mode): then its body may stream (`uploads`)."""
        gateway = ctx.gateway
        assert gateway is not None
        if ctx.path in (HEALTH_PATH, READY_PATH) or any(
            e.path == ctx.path.rstrip("/") for e in gateway.local_endpoints
        ):
            return False
        try:
            api = self._find_api(ctx, gateway, False)
            endpoint = ctx.endpoint
            if endpoint is None or endpoint.local or endpoint.wire != PASSTHROUGH:
                return False
            call = api.decode(endpoint, b"", ctx.headers, ctx.query)
        except GatewayError:
            return False
        found = gateway.match_route(call, ctx.path, ctx.headers, ctx.host)
        return call.wire == PASSTHROUGH and not call.model and found is not None

    async def _ready(self, ctx: RequestContext, gateway: Gateway) -> Reply:
        problems = await gateway.readiness()
        if problems:
            body = jsonx.dumps({"status": "unavailable", "problems": problems})
            return reply(ctx, 503, body, "application/json")
        return reply(ctx, 200, b'{"status":"ready"}', "application/json")

    async def _local(self, ctx: RequestContext, gateway: Gateway, local: LocalEndpoint) -> Reply:
        ctx.annotations["local"] = local.name
        if local.admin:
            if not gateway.config.gateway.admin_keys and not self.loopback:
                raise GatewayError(  # client keys are not admin keys off loopback
                    403,
                    "admin endpoints need gateway.admin_keys on a listener that is not "
                    "loopback-only",
                    code="admin_disabled",
                )
            _verify_admin(ctx, gateway, local.browser)
        else:
            await _authenticate(ctx, gateway)
        answer = await local.handler(ctx)
        result = reply(ctx, answer.status, answer.body, answer.content_type)
        result.headers.update(answer.headers or {})
        return result

    def _find_api(self, ctx: RequestContext, gateway: Gateway, forward: bool) -> IngressAPI:
        """The API and endpoint of the request: a match, else a 405 for a path an API owns,
        else an API's pass-through endpoint, else a 404."""
        apis, own = _client_first(gateway.apis, ctx)
        found = self._match(ctx, apis, forward, "match")
        if found is not None:
            return found
        owner = next((a for a in apis if a.claims(ctx.path)), None)
        ctx.api = owner or (apis[0] if apis else None)
        if owner is not None:
            error = GatewayError(
                405, f"method {ctx.method} is not allowed on {ctx.path}", code="method_not_allowed"
            )
        else:
            found = self._match(ctx, apis, forward, "fallback", own)
            if found is not None:
                return found
            error = not_found(
                f"unknown path {ctx.path}: this gateway serves "
                + ", ".join(path for api in gateway.apis for path in api.paths),
                code="unknown_url",
            )
        if forward:
            self._unmatched(ctx, gateway, error)
        raise error

    @staticmethod
    def _match(
        ctx: RequestContext,
        apis: list[IngressAPI],
        forward: bool,
        ask: str,
        own: list[IngressAPI] | None = None,
    ) -> IngressAPI | None:
        for api in apis:
            mine = own is not None and api in own  # the client's API: its own pass-through
            endpoint = getattr(api, "own_fallback" if mine else ask)(ctx.method, ctx.path)
            if endpoint is not None and forward and endpoint.local:
                endpoint = api.fallback(ctx.method, ctx.path)  # the real host answers
            if endpoint is not None:
                ctx.api, ctx.endpoint = api, endpoint
                return api
        return None

    def _unmatched(self, ctx: RequestContext, gateway: Gateway, error: GatewayError) -> None:
        """Forward mode, nothing matched: pass untouched, or deny (the default)."""
        if gateway.config.gateway.unmatched == "pass":
            ctx.annotations["unmatched"] = "passed"
            raise Passed
        raise GatewayError(
            403,
            f"{error.message}; the gateway denies requests to {ctx.host} that match no route",
            "invalid_request_error",
            "unmatched_denied",
        )

    def _decode(self, ctx: RequestContext, api: IngressAPI, body: bytes) -> None:
        assert ctx.endpoint is not None
        call = api.decode(ctx.endpoint, body, ctx.headers, ctx.query)
        call.method, call.path, call.query = ctx.method, ctx.path, ctx.query
        ctx.call = call
        ctx.wire = api.wire(call.wire)
        if call.view is None:
            call.view = ctx.wire.view(call)

    async def _route_and_police(self, ctx: RequestContext, gateway: Gateway, forward: bool) -> None:
        assert ctx.call is not None
        route = gateway.match_route(ctx.call, ctx.path, ctx.headers, ctx.host)
        if route is None and forward and ctx.call.wire == PASSTHROUGH:
            route = gateway.host_route(ctx.call, ctx.host)
        if route is None:
            raise NoRoute(_no_route(ctx))
        ctx.route = route
        gateway.hooks.request_received(ctx)
        await gateway.hooks.admit(ctx, None)
        for policy in route.policies:
            decision = await policy.on_request(ctx)
            if decision is not None and not decision.allowed:
                raise decision.as_error()
        ctx.plan = gateway.hooks.plan(ctx, route)
        if ctx.plan is None or not ctx.plan.attempts:
            raise GatewayError(
                503, f"route '{route.name}' has no backend to try", "server_error", "no_backend"
            )

    async def _send(
        self, ctx: RequestContext, streaming: Callable[[], None] | None
    ) -> Reply | StreamReply:
        estimated = await estimate_reply(ctx)
        if estimated is not None:
            return estimated
        if ctx.streaming and streaming is not None:
            streaming()
        last: GatewayError | None = None
        while True:
            sent = await open_upstream(ctx, self.transport, last=last)
            ctx.served_by = sent.attempt
            if ctx.streaming:
                return self._stream(ctx, sent)
            if sent.lane == NATIVE and ctx.wire is not None and not ctx.wire.json_answers:
                return self._relay_raw(ctx, sent)
            try:
                body = await _read_whole(ctx, sent)
                break
            except UpstreamFailure as failure:  # the next attempt may answer whole
                last = read_failed(ctx, sent, failure)
        ctx.timings.first_byte = ctx.timings.upstream_end = time.monotonic()
        if sent.lane == NATIVE:
            return await native_answer(ctx, sent, body)
        return await translated_answer(ctx, sent, body)

    def _stream(self, ctx: RequestContext, sent: Sent) -> Reply | StreamReply:
        provider = sent.attempt.backend.provider
        content_type = sent.response.headers.get("content-type", "")
        if not any(t in content_type for t in provider.stream_content_types):
            sent.response.release()
            raise GatewayError(
                502,
                f"backend '{sent.attempt.backend.name}' did not answer with a stream",
                "server_error",
                "upstream_not_streaming",
            )
        source, out_type = self._source(ctx, sent, content_type)
        ctx.status = 200
        headers = {"content-type": out_type, **served_headers(ctx)}
        return StreamReply(200, headers, StreamBody(ctx, sent, source, self.transport, self.live))

    def _relay_raw(self, ctx: RequestContext, sent: Sent) -> StreamReply:
        """A pass-through answer (audio, a file's content ...) goes to the client as it
        arrives, never buffered whole."""
        status = sent.response.status
        ctx.status = status
        content_type = sent.response.headers.get("content-type", "application/octet-stream")
        headers = {"content-type": content_type, **served_headers(ctx)}
        source = NativeSource(RawStream())
        body = StreamBody(ctx, sent, source, self.transport, self.live)
        return StreamReply(status, headers, body)

    def _source(
        self, ctx: RequestContext, sent: Sent, content_type: str
    ) -> tuple[StreamSource, str]:
        assert ctx.route is not None and ctx.call is not None and ctx.api is not None
        filters = [f for p in ctx.route.policies if (f := p.stream_filter(ctx)) is not None]
        if sent.lane == NATIVE:
            assert ctx.wire is not None
            stream = ctx.wire.native_stream(ctx, filters, not ctx.call.wants_usage)
            return NativeSource(stream), content_type
        assert sent.hub is not None
        decoder = sent.attempt.backend.provider.stream_decoder(ctx, sent.hub)
        encoder = ctx.api.stream_encoder(ctx)
        hub = HubStream(ctx, decoder, filters, encoder, keep_usage=sent.hub.client_wants_usage)
        return hub, encoder.content_type


async def _read_whole(ctx: RequestContext, sent: Sent) -> bytes:
    """A whole answer within the attempt's total timeout and `gateway.max_answer_bytes`."""
    assert ctx.gateway is not None
    limit = ctx.gateway.config.gateway.max_answer_bytes
    try:
        async with timeouts.before(sent.deadline):
            return await read_bounded(sent.response, limit)
    except AnswerTooLarge:
        raise upstream_error(
            502,
            f"backend '{sent.attempt.backend.name}' answered with more than the gateway's "
            f"limit of {limit} bytes (gateway.max_answer_bytes)",
            "upstream_answer_too_large",
        ) from None
    finally:
        sent.response.release()


async def _authenticate(ctx: RequestContext, gateway: Gateway) -> None:
    """Who the client is (a governance plugin), else the gateway's own key check."""
    ctx.principal = await gateway.hooks.authenticate(ctx)
    if ctx.principal is None:
        gateway.key_check.verify(ctx.client)


def _verify_admin(ctx: RequestContext, gateway: Gateway, browser: bool) -> None:
    if browser and ctx.client.api_key is None:
        ctx.client.api_key = basic_password(ctx.headers)
    try:
        gateway.admin_check.verify(ctx.client)
    except GatewayError as error:
        if browser:
            error.headers["www-authenticate"] = 'Basic realm="modelway", charset="UTF-8"'
        raise


def _no_route(ctx: RequestContext) -> GatewayError:
    assert ctx.call is not None
    if ctx.call.model:
        return not_found(
            f"the model '{ctx.call.model}' does not exist or no route serves it",
            code="model_not_found",
        )
    return not_found(
        f"no route serves {ctx.method} {ctx.path}: a request without a model reaches a "
        "backend only through a route whose match.path (or match.host) names it",
        code="unknown_url",
    )
