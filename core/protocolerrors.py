"""mitmproxy's own protocol-error answers as JSON errors in OpenAI's shape, not HTML pages.

A few failures never reach an addon hook: a declared body far over the size limit, a request
that is not valid HTTP, an upstream mitmproxy itself cannot reach. mitmproxy answers those
directly with an HTML page; clients of an API gateway expect the API's JSON error instead.
"""

from __future__ import annotations

import json

from mitmproxy import http, version
from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1

_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "request_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    502: "bad_gateway",
    504: "gateway_timeout",
}


def json_error_response(status_code: int, message: str = "") -> bytes:
    """The bytes of a complete HTTP/1 error answer, like mitmproxy's, with a JSON body."""
    text = message.replace("mitmproxy's body_size_limit", "the gateway's body size limit")
    error = {
        "message": text or http.status_codes.RESPONSES.get(status_code, "error"),
        "type": "server_error" if status_code >= 500 else "invalid_request_error",
        "param": None,
        "code": _CODES.get(status_code, "protocol_error"),
    }
    response = http.Response.make(
        status_code,
        json.dumps({"error": error}).encode(),
        http.Headers(Server=version.MITMPROXY, Connection="close", Content_Type="application/json"),
    )
    return http1.assemble_response(response)


def install() -> None:
    """Make mitmproxy's HTTP/1 layer use `json_error_response` (idempotent)."""
    _http1.make_error_response = json_error_response
