"""mitmproxy's own protocol-error answers as JSON errors in OpenAI's shape, not HTML pages.

A few failures never reach an addon hook: a declared body far over the size limit, a request
that is not valid HTTP, an upstream mitmproxy itself cannot reach. mitmproxy answers those
directly with an HTML page; clients of an API gateway expect the API's JSON error instead.
A chunked body with trailers, which mitmproxy's HTTP/1 reader crashes on (and then leaves
the connection hanging), is read with its trailers kept on the request, which the engine
refuses with a 400.
"""

from __future__ import annotations

from typing import Any

import h11
from mitmproxy import http, version
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from modelway.providerkit import dumps

_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "request_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    502: "bad_gateway",
    503: "overloaded",
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


class _Trailers:
    """An h11 body reader that hands trailers to the request instead of to mitmproxy 11,
    which raises NotImplementedError on them inside its connection handler and then never
    answers. The engine refuses a request with trailers (a 400 in the client's shape)."""

    def __init__(self, reader: Any, message: Any) -> None:
        self.reader = reader
        self.message = message

    def __call__(self, buf: Any) -> Any:
        return self._checked(self.reader(buf))

    def read_eof(self) -> Any:
        return self._checked(self.reader.read_eof())

    def _checked(self, event: Any) -> Any:
        if isinstance(event, h11.EndOfMessage) and event.headers:
            fields = [(bytes(name), bytes(value)) for name, value in event.headers]
            if isinstance(self.message, http.Message):
                self.message.trailers = http.Headers(fields)
            return h11.EndOfMessage()
        return event


def _catch_trailers() -> None:
    connection = _http1.Http1Connection
    original = connection.read_body
    if getattr(original, "_modelway", False):
        return

    def read_body(self: Any, event: Any) -> Any:
        reader = self.body_reader
        if reader is not None and not isinstance(reader, _Trailers):
            is_request = isinstance(self, _http1.Http1Server)
            self.body_reader = _Trailers(reader, self.request if is_request else self.response)
        return original(self, event)

    read_body._modelway = True  # type: ignore[attr-defined]
    connection.read_body = read_body  # type: ignore[method-assign]


class HeaderLimit:
    """The largest request head (request line and headers) mitmproxy may buffer; the engine
    sets it from `gateway.clients.max_header_bytes` (mitmproxy itself has no limit)."""

    max_bytes = 64 * 1024


def _bound_headers() -> None:
    server = _http1.Http1Server
    original = server.read_headers
    if getattr(original, "_modelway", False):
        return

    def read_headers(self: Any, event: Any) -> Any:
        limit = HeaderLimit.max_bytes
        if (
            isinstance(event, events.DataReceived)
            and len(self.buf) > limit
            and b"\r\n\r\n" not in bytes(self.buf)[: limit + 4]
        ):
            message = f"the request headers are larger than the gateway's limit of {limit} bytes"
            yield commands.SendData(self.conn, json_error_response(431, message))
            yield commands.CloseConnection(self.conn)
            self.state = self.done
            return
        yield from original(self, event)

    read_headers._modelway = True  # type: ignore[attr-defined]
    server.read_headers = read_headers  # type: ignore[method-assign]


def install() -> None:
    """Make mitmproxy's HTTP layers answer their own errors in JSON (idempotent).

    HTTP/1 gets a JSON content type too; HTTP/2 and HTTP/3 keep mitmproxy's hard-coded
    `text/html` header, but their body is the same JSON (SDKs parse it either way).
    """
    _http1.make_error_response = json_error_response
    _catch_trailers()
    _bound_headers()
    _http2.format_error = json_error_body
    _http3.format_error = json_error_body
