"""Gemini's resumable uploads (`/upload/v1beta/files`) through the gateway, never past it.

Google's protocol: a start request (`x-goog-upload-protocol: resumable`, `x-goog-upload-
command: start`) is answered with an upload URL in `x-goog-upload-url`; the bytes go to that
URL (`upload`, `upload, finalize`, with `x-goog-upload-offset`), and every answer says where
the upload stands (`x-goog-upload-status`). The gateway sends each request to the backend's
own base URL with its credentials and the client's `x-goog-upload-*` headers and body as they
are. The upload URL it gives back keeps the backend's path and query (the upload id, opaque)
on the gateway's own origin, so the follow-ups come to the gateway again, on the same route.

It is rewritten only when it is on the backend's own origin and under its `/upload/` path;
any other URL is left out of the answer (logged), so the gateway never sends a request (or
its credentials) to a host the configuration did not name: a follow-up's URL is always built
from the backend's base URL and the path the client asked for.

The SDKs send no key to the upload URL, so when the client sent one, the URL also carries a
token the gateway signs (`modelway.followups`): bound to this URL, the backend's base URL
and an expiry, it authenticates the follow-ups as the client that started the upload (its key goes
nowhere but back into the gateway). With gateway keys on, an upload URL without a valid token
is a 401; a follow-up routed to another backend than the start's is a 400.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from modelway import followups
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.wire import Call

logger = logging.getLogger("modelway.gemini")

UPLOAD_PREFIX = "/upload/"
UPLOAD_HEADER = "x-goog-upload-"
UPLOAD_URL = "x-goog-upload-url"


def is_upload(path: str) -> bool:
    """Whether a pass-through path is one of Google's upload paths."""
    return path.startswith(UPLOAD_PREFIX)


def upload_url(base: str, call: Call) -> str:
    """The backend's URL for an upload request: its base URL, the client's path and query."""
    return base + call.path + (f"?{call.query}" if call.query else "")


def upload_headers(ctx: RequestContext, call: Call) -> dict[str, str]:
    """The client's protocol headers and content type (the body is the file's bytes)."""
    headers = {k: v for k, v in ctx.headers.items() if k.startswith(UPLOAD_HEADER)}
    if call.content_type:
        headers["content-type"] = call.content_type
    return headers


def answer_headers(ctx: RequestContext, headers: Mapping[str, str], base: str) -> dict[str, str]:
    """The upload headers of the backend's answer, its upload URL on the gateway's origin
    (signed for the client when it sent a key)."""
    out = {k.lower(): v for k, v in headers.items() if k.lower().startswith(UPLOAD_HEADER)}
    found = out.pop(UPLOAD_URL, None)
    if found is None:
        return out
    rewritten = gateway_url(ctx, found, base)
    if rewritten is None:
        logger.warning("an upload URL not on the backend's origin was left out of the answer")
    else:
        out[UPLOAD_URL] = signed(ctx, rewritten, base)
    return out


def signed(ctx: RequestContext, url: str, base: str) -> str:
    """`url` with a token that authenticates its requests as this client, to the backend
    at `base` (the real upload URL is `base` and the URL's path and query)."""
    key = ctx.client.api_key
    if not key or ctx.gateway is None:
        return url
    head, _, query = url.partition("?")
    path = urlsplit(head).path
    token = followups.sealer_of(ctx.gateway).seal(key, base, path, query)
    return f"{head}?{followups.with_token(query, token)}"


def check_backend(ctx: RequestContext, base: str) -> None:
    """A signed follow-up goes to the backend that started its upload (at the base URL the
    token names: the upload id is that backend's), never to another one the route may pick."""
    if ctx.follow_up is not None and ctx.follow_up != base:
        raise GatewayError(
            400,
            "this upload was started on another backend: start the upload again",
            code="upload_backend_mismatch",
        )


def gateway_url(ctx: RequestContext, url: str, base: str) -> str | None:
    """`url` on the gateway's origin, or None when it is not under the backend's uploads."""
    upstream, own = urlsplit(url), urlsplit(base)
    prefix = own.path.rstrip("/")
    if (upstream.scheme, upstream.netloc) != (own.scheme, own.netloc):
        return None
    path = upstream.path.removeprefix(prefix) if upstream.path.startswith(prefix) else ""
    if not is_upload(path) or ".." in path.split("/"):
        return None
    query = f"?{upstream.query}" if upstream.query else ""
    return f"{_origin(ctx, own.netloc)}{path}{query}"


def _origin(ctx: RequestContext, backend_host: str) -> str:
    """The gateway as its client reached it: the Host it asked for, over TLS when a proxy in
    front says so or the client asked the backend's own host (forward mode)."""
    host = ctx.headers.get("host") or ctx.host
    proto = ctx.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    secure = proto == "https" or (not proto and host == backend_host)
    return f"{'https' if secure else 'http'}://{host}"
