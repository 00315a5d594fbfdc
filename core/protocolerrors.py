"""mitmproxy's own protocol-error answers as JSON errors in the client's API shape, not HTML.

A few failures never reach an addon hook: a declared body far over the size limit, a request
that is not valid HTTP, an upstream mitmproxy itself cannot reach. mitmproxy answers those
directly with an HTML page; clients of an API gateway expect the API's JSON error instead: on
HTTP/1, in the shape of the client's API where the request head says which it is
(`protocolshape`: Anthropic's `{"type": "error", ...}`, Google's `{"error": {"code",
"status"}}`), OpenAI's otherwise; HTTP/2 and HTTP/3 answers are OpenAI's.
A chunked body with trailers, which mitmproxy's HTTP/1 reader crashes on (and then leaves
the connection hanging), is read with its trailers kept on the request, which the engine
refuses with a 400.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import h11
from mitmproxy import http, version
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import ResponseProtocolError, _http1, _http2, _http3

from modelway.errors import GatewayError
from modelway.protocolshape import Head, apis_for, client_api
from modelway.providerkit import dumps

if TYPE_CHECKING:
    from modelway.ingress import IngressAPI

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


def json_error_body(status_code: int, message: str = "", api: IngressAPI | None = None) -> bytes:
    """A JSON error for one of mitmproxy's own protocol errors, in `api`'s shape (OpenAI's
    without one)."""
    text = message.replace("mitmproxy's body_size_limit", "the gateway's body size limit")
    error = GatewayError(
        status_code,
        text or http.status_codes.RESPONSES.get(status_code, "error"),
        "server_error" if status_code >= 500 else "invalid_request_error",
        _CODES.get(status_code, "protocol_error"),
    )
    if api is not None:
        return api.error_body(error)
    body = {"message": error.message, "type": error.type, "param": None, "code": error.code}
    return dumps({"error": body})


def json_error_response(
    status_code: int, message: str = "", api: IngressAPI | None = None
) -> bytes:
    """The bytes of a complete HTTP/1 error answer, like mitmproxy's, with a JSON body."""
    response = http.Response.make(
        status_code,
        json_error_body(status_code, message, api),
        http.Headers(Server=version.MITMPROXY, Connection="close", Content_Type="application/json"),
    )
    return http1.assemble_response(response)


class _Trailers:
    """An h11 body reader that hands trailers to the request instead of to mitmproxy 11,
    which raises NotImplementedError on them inside its connection handler and then never
    answers. The engine refuses a request with trailers (a 400 in the client's shape). It
    also notes framing h11 cannot read in received bytes (`failed`)."""

    def __init__(self, reader: Any, message: Any) -> None:
        self.reader = reader
        self.message = message
        self.failed = False

    def __call__(self, buf: Any) -> Any:
        try:
            return self._checked(self.reader(buf))
        except h11.ProtocolError:
            self.failed = True
            raise

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
        is_request = isinstance(self, _http1.Http1Server)
        if reader is not None and not isinstance(reader, _Trailers):
            self.body_reader = _Trailers(reader, self.request if is_request else self.response)
        if is_request:
            return _answer_bad_framing(self, original(self, event))
        return original(self, event)

    read_body._modelway = True  # type: ignore[attr-defined]
    connection.read_body = read_body  # type: ignore[method-assign]


BAD_FRAMING = "the request body's framing is not valid HTTP/1.1 (a chunk size must be hex)"


def _answer_bad_framing(server: Any, sent: Any) -> Any:
    """A request body h11 cannot frame (a chunk size that is not hex): mitmproxy closes the
    connection without a word; a 400 in the client's shape goes out before it closes."""
    for command in sent:
        reader = server.body_reader
        if (
            isinstance(command, commands.CloseConnection)
            and isinstance(reader, _Trailers)
            and reader.failed
            and server.response is None
        ):
            answer = commands.SendData(server.conn, json_error_response(400, BAD_FRAMING))
            yield _in_shape(answer, server)
        yield command


def _in_shape(command: Any, server: Any, head: Head | None = None) -> Any:
    """An error answer mitmproxy sends (OpenAI-shaped by `json_error_response`) in the shape
    of the client's API, from `head` or the request head the server read; any other command
    as it is."""
    if not isinstance(command, commands.SendData):
        return command
    try:
        if head is None and server.request is not None:
            head = Head.of_request(server.request)
        api = client_api(apis_for(server.context.options), head) if head else None
        if api is None:
            return command
        status, message = _status_and_message(command.data)
        return commands.SendData(command.connection, json_error_response(status, message, api))
    except Exception:  # the answer mitmproxy would send is still a JSON error
        return command


def _status_and_message(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), str(json.loads(body)["error"]["message"])


def _shape_answers() -> None:
    """A protocol error answered to a request whose head was read: in its client's shape."""
    server = _http1.Http1Server
    original = server.send
    if getattr(original, "_modelway", False):
        return

    def send(self: Any, event: Any) -> Any:
        if not isinstance(event, ResponseProtocolError):
            return (yield from original(self, event))
        for command in original(self, event):
            yield _in_shape(command, self)

    send._modelway = True  # type: ignore[attr-defined]
    server.send = send  # type: ignore[method-assign]


class HeaderLimit:
    """The largest request head (request line and headers) mitmproxy may buffer; the engine
    sets it from `gateway.clients.max_header_bytes` (mitmproxy itself has no limit)."""

    max_bytes = 64 * 1024


def _head_too_large(server: Any, raw: bytes, limit: int) -> Any:
    message = f"the request headers are larger than the gateway's limit of {limit} bytes"
    answer = commands.SendData(server.conn, json_error_response(431, message))
    yield _in_shape(answer, server, Head.of_bytes(raw))
    yield commands.CloseConnection(server.conn)
    server.state = server.done


def _bound_headers() -> None:
    """Heads over `HeaderLimit` are a 431; a head mitmproxy refuses (a 400) is answered in
    its client's shape when its request line and headers were read."""
    server = _http1.Http1Server
    original = server.read_headers
    if getattr(original, "_modelway", False):
        return

    def read_headers(self: Any, event: Any) -> Any:
        limit = HeaderLimit.max_bytes
        if isinstance(event, events.DataReceived) and len(self.buf) > limit:
            raw = bytes(self.buf)[: limit + 4]
            if b"\r\n\r\n" not in raw:
                yield from _head_too_large(self, raw, limit)
                return
        raw = bytes(self.buf)  # a head mitmproxy cannot parse is gone from `buf` after it
        for command in original(self, event):
            unread = self.request is None and isinstance(command, commands.SendData)
            head = Head.of_bytes(raw) if unread else None
            yield _in_shape(command, self, head)

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
    _shape_answers()
    _http2.format_error = json_error_body
    _http3.format_error = json_error_body
