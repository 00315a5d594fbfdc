"""mitmproxy's own protocol-error answers as JSON errors in OpenAI's shape, not HTML pages.

A few failures never reach an addon hook: a declared body far over the size limit, a request
that is not valid HTTP, an upstream mitmproxy itself cannot reach. mitmproxy answers those
directly with an HTML page; clients of an API gateway expect the API's JSON error instead.
"""

from __future__ import annotations

from mitmproxy import http, version
from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from modelway.providerkit import dumps

_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "request_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    502: "bad_gateway",
    504: "gateway_timeout",
}


def json_error_body(status_code: int, message: str = "") -> bytes:
    """An OpenAI-shaped JSON error for one of mitmproxy's own protocol errors."""
    text = message.replace("mitmproxy's body_size_limit", "the gateway's body size limit")
    error = {
        "message": text or http.status_codes.RESPONSES.get(status_code, "error"),
        "type": "server_error" if status_code >= 500 else "invalid_request_error",
        "param": None,
        "code": _CODES.get(status_code, "protocol_error"),
    }
    return dumps({"error": error})


def json_error_response(status_code: int, message: str = "") -> bytes:
    """The bytes of a complete HTTP/1 error answer, like mitmproxy's, with a JSON body."""
    response = http.Response.make(
        status_code,
        json_error_body(status_code, message),
        http.Headers(Server=version.MITMPROXY, Connection="close", Content_Type="application/json"),
    )
    return http1.assemble_response(response)


def install() -> None:
    """Make mitmproxy's HTTP layers answer their own errors in JSON (idempotent).

    HTTP/1 gets a JSON content type too; HTTP/2 and HTTP/3 keep mitmproxy's hard-coded
    `text/html` header, but their body is the same JSON (SDKs parse it either way).
    """
    _http1.make_error_response = json_error_response
    _http2.format_error = json_error_body
    _http3.format_error = json_error_body
