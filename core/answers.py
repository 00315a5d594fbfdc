"""Complete (non-streamed) answers, on both lanes, through the route's response policies.

Same-API lane: the backend's own answer goes to the client byte for byte; it is parsed only
for its usage and, when a response policy runs, to edit its texts through the wire's
`ResponseView` (then encoded again). Hub lane: the provider decodes the answer into the
canonical form, policies see it through the chat view, and the ingress API encodes it.
"""

from __future__ import annotations

from typing import Any

from modelway import jsonx
from modelway.attempts import Sent
from modelway.context import RequestContext
from modelway.errors import upstream_error
from modelway.hubview import ChatResponseView
from modelway.ingress import WireSupport
from modelway.replies import Reply, reply
from modelway.wire import ResponseView


async def native_answer(ctx: RequestContext, sent: Sent, body: bytes) -> Reply:
    assert ctx.wire is not None
    content_type = sent.response.headers.get("content-type", "application/json")
    data = _json(body) if ctx.wire.json_answers or "json" in content_type else None
    if ctx.wire.json_answers:
        _check(ctx.wire, data)
    if data is not None:
        ctx.usage = ctx.wire.usage(data)
    if data is not None and _has_policies(ctx):
        view = ctx.wire.response_view(data)
        if view is not None and await _police(ctx, view):
            body = jsonx.dumps(data)
    if data is not None:
        ctx.wire.answered(ctx, data)
    return reply(ctx, sent.response.status, body, content_type)


async def translated_answer(ctx: RequestContext, sent: Sent, body: bytes) -> Reply:
    assert sent.hub is not None and ctx.api is not None
    provider = sent.attempt.backend.provider
    result = provider.parse_response(ctx, sent.hub, sent.response.status, body)
    ctx.usage = result.usage
    if _has_policies(ctx):
        await _police(ctx, ChatResponseView(result.body))
    return reply(ctx, result.status, ctx.api.encode_response(ctx, result), "application/json")


def _check(wire: WireSupport, data: Any) -> None:
    """A same-API answer the client could not use is the backend's fault: a 502."""
    if data is None:
        raise upstream_error(
            502, "the backend answered with something that is not JSON", "upstream_invalid_response"
        )
    key = wire.answer_key
    if not isinstance(data, dict) or (key is not None and not isinstance(data.get(key), list)):
        what = f"a '{key}' list" if key else "a JSON object"
        raise upstream_error(
            502, f"the backend's answer has no {what}", "upstream_invalid_response"
        )


def _has_policies(ctx: RequestContext) -> bool:
    return bool(ctx.route and ctx.route.policies)


async def _police(ctx: RequestContext, view: ResponseView) -> bool:
    """Run the route's response policies; True when one edited the answer."""
    assert ctx.route is not None
    for policy in ctx.route.policies:
        decision = await policy.on_response(ctx, view)
        if decision is not None and not decision.allowed:
            raise decision.as_error()
    return bool(getattr(view, "edited", False))


def _json(body: bytes) -> Any:
    try:
        return jsonx.loads(body)
    except ValueError:
        return None
