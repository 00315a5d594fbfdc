"""mitmproxy's own protocol errors, answered before any addon hook (a body over its size limit,
a head it cannot frame, a head over `max_header_bytes`), are in the client's API shape:
Anthropic's `{"type": "error", "error": {...}}` for an Anthropic client (its headers, its
paths), Google's `{"error": {"code", "message", "status"}}` on Gemini's paths, OpenAI's
otherwise (`modelway.protocolshape`, `modelway.protocolerrors`).

A real gateway whose mitmproxy body limit is lowered to a few KiB (so the test sends KiBs, not
64 MiB), with the official anthropic SDK and raw HTTP/1.1 on a socket.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Reply, UpstreamServer

MITMPROXY_LIMIT = 16 * 1024
"""mitmproxy's `body_size_limit` in these tests (the gateway's own `max_body_bytes` is above)."""
HEADER_LIMIT = 2048
TIMEOUT = 10
GEMINI_PATH = "/v1beta/models/gemini-2.0-flash:generateContent"
ANTHROPIC_HEAD = {"anthropic-version": "2023-06-01", "x-api-key": "sk"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(lambda received: Reply.json({})) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "gateway": {
            "max_body_bytes": 4 * MITMPROXY_LIMIT,
            "clients": {"max_header_bytes": HEADER_LIMIT},
        },
        "backends": {
            "claude": {"provider": "anthropic", "base_url": upstream.origin, "api_key": "k"},
        },
        "routes": [{"match": {"model": "*"}, "backend": "claude"}],
    }
    with run_gateway(config) as gw:
        master = gw.server.master
        assert master is not None

        async def lower() -> None:
            master.options.update(body_size_limit=str(MITMPROXY_LIMIT))

        gw.call(lower())
        yield gw


def raw(gw: RunningGateway, data: bytes) -> tuple[int, dict[str, Any]]:
    """Bytes written to the gateway as they are; the status and JSON body of the answer."""
    with socket.create_connection((gw.host, gw.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.getheader("content-type") == "application/json"
        return response.status, json.loads(response.read())


def head(path: str, headers: dict[str, str], length: str = "1000000000") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(path: str, headers: dict[str, str], size: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    body = b"x" * size
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (size, body)


def anthropic_error(body: dict[str, Any], kind: str) -> str:
    assert body["type"] == "error" and set(body) == {"type", "error"}, body
    assert body["error"]["type"] == kind
    return str(body["error"]["message"])


def test_the_anthropic_sdk_gets_mitmproxys_413_in_anthropics_shape(gateway, upstream):
    client = gateway.closing(anthropic.Anthropic(base_url=gateway.url, api_key="sk", max_retries=0))
    upstream.received.clear()
    big = [{"role": "user", "content": "x" * (2 * MITMPROXY_LIMIT)}]
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model="claude-x", max_tokens=5, messages=big)
    assert raised.value.status_code == 413
    message = anthropic_error(raised.value.response.json(), "request_too_large")
    assert "the gateway's body size limit" in message
    assert upstream.received == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/messages", ANTHROPIC_HEAD),
        ("/v1/messages", {"anthropic-version": "2023-06-01"}),
        ("/v1/files", {"x-api-key": "sk"}),
        ("/v1/messages/batches", {}),
    ],
)
def test_raw_requests_of_anthropic_clients_get_anthropics_shape(gateway, path, headers):
    status, body = raw(gateway, head(path, headers))
    assert status == 413
    anthropic_error(body, "request_too_large")


def test_a_chunked_body_over_the_limit_is_anthropics_413(gateway):
    status, body = raw(gateway, chunked("/v1/messages", ANTHROPIC_HEAD, 2 * MITMPROXY_LIMIT))
    assert status == 413
    anthropic_error(body, "request_too_large")


@pytest.mark.parametrize("headers", [{}, {"x-goog-api-key": "k"}])
def test_gemini_paths_get_googles_shape(gateway, headers):
    status, body = raw(gateway, head(GEMINI_PATH, headers))
    assert status == 413
    error = body["error"]
    assert set(body) == {"error"} and error["code"] == 413
    assert error["status"] == "INVALID_ARGUMENT" and "body size limit" in error["message"]


def test_a_query_key_makes_a_shared_path_googles(gateway):
    """`/v1/files` is OpenAI's too; with Google's `?key=` it is a Google client's."""
    status, body = raw(gateway, head("/v1/files?key=k", {}))
    assert status == 413 and body["error"]["status"] == "INVALID_ARGUMENT"
    status, body = raw(gateway, head("/v1/files?monkey=k", {}))
    assert status == 413 and body["error"]["code"] == "request_too_large"


def test_other_clients_get_openais_shape(gateway):
    status, body = raw(gateway, head("/v1/chat/completions", {"authorization": "Bearer sk"}))
    assert status == 413
    assert body["error"]["code"] == "request_too_large" and "type" not in body


def test_a_head_mitmproxy_cannot_frame_is_a_400_in_the_clients_shape(gateway):
    status, body = raw(gateway, head("/v1/messages", ANTHROPIC_HEAD, length="12x"))
    assert status == 400
    assert "content-length" in anthropic_error(body, "invalid_request_error").lower()
    status, body = raw(gateway, head(GEMINI_PATH, {}, length="12x"))
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")


def test_a_head_over_the_header_limit_is_a_431_in_the_clients_shape(gateway):
    padding = {"x-pad": "p" * (2 * HEADER_LIMIT)}
    status, body = raw(gateway, head("/v1/messages", {**ANTHROPIC_HEAD, **padding}))
    assert status == 431
    assert str(HEADER_LIMIT) in anthropic_error(body, "invalid_request_error")
    status, body = raw(gateway, head("/v1/chat/completions", padding))
    assert (status, body["error"]["code"]) == (431, "headers_too_large")


def bad_chunk(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + b"zz\r\n{}\r\n0\r\n\r\n"


def test_a_chunk_size_that_is_not_hex_is_a_400_in_the_clients_shape(gateway, upstream):
    upstream.received.clear()
    status, body = raw(gateway, bad_chunk("/v1/messages", ANTHROPIC_HEAD))
    assert status == 400
    assert "chunk size" in anthropic_error(body, "invalid_request_error")
    status, body = raw(gateway, bad_chunk(GEMINI_PATH, {}))
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    status, body = raw(gateway, bad_chunk("/v1/chat/completions", {}))
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert upstream.received == []


@pytest.mark.parametrize(
    ("path", "headers", "shape"),
    [
        (GEMINI_PATH, ANTHROPIC_HEAD, "google"),  # Google's path wins over Anthropic's headers
        ("/v1/messages", ANTHROPIC_HEAD, "anthropic"),
        ("/v1/chat/completions", {}, "openai"),
    ],
)
def test_a_request_line_mitmproxy_cannot_parse_is_a_400_in_the_clients_shape(
    gateway, path, headers, shape
):
    """Found by the fuzz run: a control byte in the request target made mitmproxy refuse the
    request line, and the answer was OpenAI's whatever the path (the head was not kept)."""
    target = path.encode() + b"?alt=sse/\xb0\x0b\xd4$\x1b'x\xc14\x047\xd7"
    data = head("TARGET", headers, length="2").replace(b"TARGET", target) + b"{}"
    status, body = raw(gateway, data)
    assert status == 400
    if shape == "google":
        assert body["error"]["status"] == "INVALID_ARGUMENT"
    elif shape == "anthropic":
        anthropic_error(body, "invalid_request_error")
    else:
        assert body["error"]["code"] == "bad_request" and "type" not in body
