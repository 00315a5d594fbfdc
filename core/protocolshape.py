"""Which client API a request head belongs to, for the errors mitmproxy answers itself.

mitmproxy answers a few errors before any addon hook runs (a body over its size limit, a head
that is not valid HTTP); `protocolerrors` writes those answers in the client's API shape. The
API is chosen the way the request path chooses one: an API that recognizes the request as its
client's (Anthropic's `anthropic-version`, an `x-api-key` alone, Google's paths, key header
and `?key=`), else the first whose endpoints, owned paths or pass-through take the path; none
(or no gateway registered for the master) is OpenAI's shape. A master's addon registers where its
gateway's APIs are (`use_apis`), so several gateways in one process keep their own.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelway.clients import take_query_key

if TYPE_CHECKING:
    from mitmproxy import http

    from modelway.ingress import IngressAPI

Apis = Callable[[], "Sequence[IngressAPI]"]


@dataclass(frozen=True)
class Head:
    """A request's method, path (without the query) and headers (lower-cased names)."""

    method: str
    path: str
    headers: Mapping[str, str]

    @classmethod
    def of_request(cls, request: http.Request) -> Head:
        headers = {name.lower(): value for name, value in request.headers.items()}
        path, _, query = request.path.partition("?")
        take_query_key(query, headers)  # Google's `?key=` is its key header
        return cls(request.method, path, headers)

    @classmethod
    def of_bytes(cls, raw: bytes) -> Head | None:
        """The head of raw request bytes, read leniently; None without a request line."""
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not line or not colon:
                break
            headers.setdefault(name.strip().lower(), value.strip())
        path, _, query = parts[1].partition("?")
        take_query_key(query, headers)
        return cls(parts[0], path, headers)


_REGISTRY: list[tuple[weakref.ref[Any], Apis]] = []


def use_apis(options: Any, apis: Apis) -> None:
    """Protocol errors of the master with these `options` answer in the shapes of `apis()`."""
    _REGISTRY[:] = [(ref, got) for ref, got in _REGISTRY if ref() not in (None, options)]
    _REGISTRY.append((weakref.ref(options), apis))


def apis_for(options: Any) -> Sequence[IngressAPI]:
    """The APIs registered for a master's options (none: OpenAI's shape)."""
    for ref, apis in _REGISTRY:
        if ref() is options:
            return apis()
    return ()


def client_api(apis: Sequence[IngressAPI], head: Head) -> IngressAPI | None:
    """The API whose error shape the request's client reads; None for OpenAI's default.
    In the request path's order: the APIs that recognize the request first, then the first
    that matches it, owns its path or passes it through; else the first that recognizes it."""
    own = [api for api in apis if api.recognizes(head.path, head.headers)]
    ordered = [*own, *(api for api in apis if api not in own)]
    method, path = head.method, head.path
    found = next((api for api in ordered if api.match(method, path) is not None), None)
    found = found or next((api for api in ordered if api.claims(path)), None)
    found = found or next((api for api in ordered if _passes(api, own, head)), None)
    return found or (own[0] if own else None)


def _passes(api: IngressAPI, own: list[IngressAPI], head: Head) -> bool:
    """Whether the API's pass-through takes the request (its own for its client's)."""
    fallback = api.own_fallback if api in own else api.fallback
    return fallback(head.method, head.path) is not None
