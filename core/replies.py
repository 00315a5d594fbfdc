"""What the request path answers: a whole reply, or a streamed one, and errors as replies.

Building an error reply never fails: an error whose message holds text that is not Unicode
(the client's own path or names) is encoded again with that text replaced; if the ingress API
still cannot encode it (or there is no API), a minimal OpenAI-shaped JSON body is written
instead. A request is always answered by the gateway; it never falls through to anywhere else.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from modelway.context import RequestContext
from modelway.errors import GatewayError

logger = logging.getLogger("modelway")
_SURROGATE = re.compile("[\ud800-\udfff]")

Write = Callable[[bytes], Awaitable[None]]


@dataclass(slots=True)
class Reply:
    """A complete answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class StreamBody(Protocol):
    """Produces a streamed answer's bytes; `run` returns when the stream has ended."""

    async def run(self, write: Write) -> None: ...

    def cancel(self) -> None:
        """Release the upstream (the client went away before the stream was read)."""
        ...


@dataclass(slots=True)
class StreamReply:
    """An answer whose body is produced while it is sent."""

    status: int
    headers: dict[str, str]
    body: StreamBody = field(repr=False)


def served_headers(ctx: RequestContext) -> dict[str, str]:
    """The gateway's own answer headers, plus those of the backend the client gets too."""
    out = dict(ctx.upstream_headers)
    if ctx.response_headers:
        tighter_limits(out, ctx.response_headers)
    out["x-request-id"] = ctx.id
    out.setdefault("request-id", ctx.id)
    if ctx.route is not None:
        out["x-modelway-route"] = ctx.route.name
    if ctx.served_by is not None:
        out["x-modelway-backend"] = ctx.served_by.backend.name
        if ctx.served_by.variant:
            out["x-modelway-variant"] = ctx.served_by.variant
    return out


_LIMIT_FAMILIES = ("requests", "tokens")


def tighter_limits(headers: dict[str, str], own: dict[str, str]) -> None:
    """Put the gateway's own headers into `headers`; a family of OpenAI-style rate-limit
    headers (`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`) replaces the upstream's
    only where the gateway's remaining is lower (the tighter limit is the one that binds)."""
    rest = dict(own)
    for family in _LIMIT_FAMILIES:
        names = [f"x-ratelimit-{part}-{family}" for part in ("limit", "remaining", "reset")]
        mine = rest.get(names[1])
        for name in names:
            rest.pop(name, None)
        if mine is None or _number(mine) > _number(headers.get(names[1]), float("inf")):
            continue
        for name in names:
            if name in own:
                headers[name] = own[name]
    headers.update(rest)


def _number(value: str | None, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def reply(ctx: RequestContext, status: int, body: bytes, content_type: str) -> Reply:
    ctx.status = status
    return Reply(status, {"content-type": content_type, **served_headers(ctx)}, body)


def error_reply(ctx: RequestContext, error: GatewayError) -> Reply:
    """The client's error answer, in its API's shape; never raises."""
    ctx.error = error
    ctx.status = error.status
    try:
        headers, body = _error_parts(ctx, error)
    except Exception:  # a client's text in the message (a path, a name) may not be Unicode
        try:
            headers, body = _error_parts(ctx, _encodable(error))
        except Exception as exc:  # an encoder that fails must not leave the request unanswered
            logger.error("encoding an error for request %s failed (%s)", ctx.id, type(exc).__name__)
            headers, body = {"content-type": "application/json"}, minimal_error_body(error)
    return Reply(error.status, {**headers, **_safe_served(ctx)}, body)


def _encodable(error: GatewayError) -> GatewayError:
    """`error` with its texts made valid Unicode (a lone surrogate, e.g. from a path's
    non-UTF-8 bytes, becomes U+FFFD), so that the API's own encoder can write it."""
    return dataclasses.replace(
        error,
        message=_unicode(error.message),
        param=error.param and _unicode(error.param),
        code=error.code and _unicode(error.code),
    )


def _unicode(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def _error_parts(ctx: RequestContext, error: GatewayError) -> tuple[dict[str, str], bytes]:
    if error.native_body is not None and ctx.lane == "native":
        return {"content-type": error.native_content_type, **error.headers}, error.native_body
    api = ctx.api or (ctx.gateway.apis[0] if ctx.gateway and ctx.gateway.apis else None)
    if api is None:
        return {"content-type": "application/json", **error.headers}, minimal_error_body(error)
    return api.error_headers(error), api.error_body(error)


def _safe_served(ctx: RequestContext) -> dict[str, str]:
    try:
        return served_headers(ctx)
    except Exception:
        return {"x-request-id": ctx.id}


def minimal_error_body(error: GatewayError) -> bytes:
    """An OpenAI-shaped error body that always encodes (ASCII escapes, no surrogate issue)."""
    payload = {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }
    return json.dumps(payload, ensure_ascii=True, default=str).encode()
