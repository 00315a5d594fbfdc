"""Signed follow-up URLs: a URL the gateway hands a client authenticates the requests to it.

Gemini's resumable upload answers its start with an upload URL, and Google's SDKs send the
bytes there without their key (the URL is the upload's credential). The gateway gives that URL
on its own origin with a token (`modelway_token`) sealed with AES-GCM under the gateway's
secret: inside, the client's key, the backend the upload belongs to (its scope: for Gemini,
the backend's base URL) and an expiry; bound (as
associated data) to the URL's path and the rest of its query, so it opens for that upload
only. A request carrying a valid token is the client that started the upload (its key, hence
its principal, limits and identity); an invalid or expired token is a 401, whatever key the
request has. The token never goes upstream, and the key in it is never readable without the
secret.

The secret is `gateway.upload_secret`, else `MODELWAY_UPLOAD_SECRET`, else one drawn for the
process (`modelway run --workers N` gives its workers one); gateways behind one address that
are not workers of one parent need the same configured secret.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelway.clients import take_param, with_key
from modelway.errors import GatewayError

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway

PARAM = "modelway_token"
SECRET_ENV = "MODELWAY_UPLOAD_SECRET"
LIFETIME_SECONDS = 7 * 24 * 3600
"""How long an upload URL authenticates (Google's resumable sessions last about a week)."""
_NONCE = 12
_CONTEXT = b"modelway follow-up token v1\0"


@dataclass(frozen=True, slots=True)
class Opened:
    """What a valid token says: the key of the client it was given to, and its scope (the
    backend it belongs to)."""

    key: str
    scope: str


class Sealer:
    """Seals and opens tokens under one secret."""

    def __init__(
        self,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        lifetime: float = LIFETIME_SECONDS,
    ) -> None:
        self._aead = AESGCM(hashlib.sha256(_CONTEXT + secret).digest())
        self._clock = clock
        self._lifetime = lifetime

    def seal(self, key: str, scope: str, path: str, query: str) -> str:
        """A token for the URL `path?query` (the token not in it yet)."""
        expires = int(self._clock() + self._lifetime)
        plain = json.dumps({"k": key, "s": scope, "e": expires}).encode()
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, plain, _bound(path, query))
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def open(self, token: str, path: str, query: str) -> Opened | None:
        """What the token says, or None when it is forged, for another URL, or expired."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _bound(path, query))
            data = json.loads(plain)
        except (ValueError, binascii.Error, InvalidTag):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), int):
            return None
        if data["e"] < self._clock():
            return None
        return Opened(str(data["k"]), str(data["s"]))


def _bound(path: str, query: str) -> bytes:
    return path.encode("utf-8", "surrogateescape") + b"?" + query.encode("utf-8", "surrogateescape")


def with_token(query: str, token: str) -> str:
    """`query` with the token as its last parameter."""
    return f"{query}&{PARAM}={token}" if query else f"{PARAM}={token}"


def split_token(query: str) -> tuple[str | None, str]:
    """The token in `query` (None without one; "" for several, which opens nothing) and the
    query without it."""
    tokens, rest = take_param(query, PARAM)
    if not tokens:
        return None, query
    return (tokens[0] if len(tokens) == 1 else ""), rest


def sealer_of(gateway: Gateway) -> Sealer:
    """The sealer under the gateway's secret (the configured one, else the process's)."""
    configured = gateway.config.gateway.upload_secret
    secret = (configured.get_secret_value() if configured is not None else "") or _process_secret()
    return _sealer(secret.encode("utf-8", "surrogateescape"))


@functools.lru_cache(maxsize=4)
def _sealer(secret: bytes) -> Sealer:
    return Sealer(secret)


@functools.cache
def _process_secret() -> str:
    return os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)


def worker_secret() -> dict[str, str]:
    """The environment that gives a parent's workers one secret (none when one is set)."""
    return {} if os.environ.get(SECRET_ENV) else {SECRET_ENV: _process_secret()}


def open_follow_up(ctx: RequestContext, gateway: Gateway) -> None:
    """A request with a token: its client becomes the one the token was given to, and the
    token leaves the query (it never goes upstream); a token that does not open is a 401."""
    token, rest = split_token(ctx.query)
    if token is None:
        return
    ctx.query = rest
    opened = sealer_of(gateway).open(token, ctx.path, rest)
    if opened is None:
        ctx.annotations["follow_up"] = "invalid"
        raise GatewayError(
            401,
            "this upload URL is not valid (or has expired): start the upload again",
            "invalid_request_error",
            "invalid_upload_token",
        )
    ctx.client = with_key(ctx.client, opened.key)
    ctx.follow_up = opened.scope
    ctx.annotations["follow_up"] = "signed"
