"""Who the client is: its key (for passthrough and gateway auth) and a loggable identity."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from modelway.context import ClientInfo
from modelway.errors import GatewayError

_KEY_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


def client_key(headers: Mapping[str, str]) -> str | None:
    """The API key the client sent, whichever header its SDK uses."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    for name in _KEY_HEADERS:
        if value := headers.get(name):
            return value
    return None


def basic_password(headers: Mapping[str, str]) -> str | None:
    """The password of HTTP Basic credentials (how a browser sends an admin key to a page)."""
    auth = headers.get("authorization", "")
    if auth[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def client_info(address: str, headers: Mapping[str, str], identity_header: str) -> ClientInfo:
    key = client_key(headers)
    named = headers.get(identity_header)
    if named:
        identity = "user:" + named[:128]
    elif key:
        identity = "key:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    else:
        identity = "ip:" + address
    return ClientInfo(address, identity, key)


class KeyCheck:
    """Checks the client's key against the gateway's own keys, when any are configured."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def verify(self, client: ClientInfo) -> None:
        if not self._keys:
            return
        given = (client.api_key or "").encode("utf-8", "surrogateescape")
        if not any(hmac.compare_digest(given, key) for key in self._keys):
            raise GatewayError(
                401,
                "missing or invalid API key for this gateway",
                "invalid_request_error",
                "invalid_api_key",
            )
