"""Who the client is: its key (for passthrough and gateway auth) and a loggable identity."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, MutableMapping
from urllib.parse import unquote

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


def take_param(query: str, name: str) -> tuple[list[str], str]:
    """The raw values of the parameter `name` in `query`, and `query` without them."""
    prefix = name + "="
    if prefix not in query:
        return [], query
    items = query.split("&")
    found = [item[len(prefix) :] for item in items if item.startswith(prefix)]
    if not found:
        return [], query
    return found, "&".join(item for item in items if not item.startswith(prefix))


def take_query_key(query: str, headers: MutableMapping[str, str]) -> str:
    """`query` without its `key` parameters (Google's REST style, `...:generateContent?key=K`),
    the key becoming the client's `x-goog-api-key` when it sent none: it is read as that
    header is, and never goes upstream in a URL (nor into a log)."""
    keys, rest = take_param(query, "key")
    if keys and keys[0] and "x-goog-api-key" not in headers:
        headers["x-goog-api-key"] = unquote(keys[0])
    return rest


def client_info(address: str, headers: Mapping[str, str], identity_header: str) -> ClientInfo:
    key = client_key(headers)
    named = headers.get(identity_header)
    if named:
        identity = "user:" + named[:128]
    elif key:
        identity = _key_identity(key)
    else:
        identity = "ip:" + address
    return ClientInfo(address, identity, key)


def with_key(client: ClientInfo, key: str) -> ClientInfo:
    """The client with this key (a signed follow-up URL's), named by it unless it names itself."""
    named = client.identity.startswith("user:")
    return ClientInfo(client.address, client.identity if named else _key_identity(key), key)


def _key_identity(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:12]


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
