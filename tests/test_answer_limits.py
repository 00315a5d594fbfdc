"""Answer limits and cancellation through a real gateway (issue 13, items 6 and 7).

A whole upstream answer over `gateway.max_answer_bytes` is a 502, read in pieces and dropped
as it arrives (an endless answer ends in a 502 too, so it was never held whole); a stream
far larger than the limit passes, piece by piece. A client that goes away cancels the
upstream request, streamed or not, also a stream that sends only SSE comments: the
upstream sees its connection closed while it would still be answering for a minute.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from modelway.testing.fake_openai import openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.testing.wait import bound_socket, port_of

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "alpha beta"}]}
LIMIT = 64 * 1024
WAIT = 30.0
"""The longest any wait here may take; the faulty upstreams would go on for longer."""


def config(url: str) -> dict[str, object]:
    return {
        "gateway": {"max_answer_bytes": LIMIT},
        "backends": {"up": {"provider": "openai", "base_url": url, "api_key": "k"}},
        "routes": [{"backend": "up"}],
    }


def huge_json(received: Received) -> Reply:
    text = "x" * (LIMIT * 4)
    return Reply.json({"id": "c", "object": "chat.completion", "choices": [], "pad": text})


def endless(received: Received) -> Reply:
    """Headers at once (no length), then 16 KiB pieces for as long as it is read."""
    return Reply(chunks=(b" " * 16384 for _ in range(1_000_000)))


def big_stream(received: Received) -> Reply:
    chunks = openai_stream_chunks(received.json)
    return Reply.sse([chunks[0], *([chunks[1]] * 2000), *chunks[-2:]])


def test_a_whole_answer_over_the_limit_is_a_502():
    with UpstreamServer(huge_json) as upstream, run_gateway(config(upstream.url)) as gw:
        answer = gw.http("POST", "/v1/chat/completions", CHAT, timeout=WAIT)
    assert answer.status == 502
    assert answer.json["error"]["code"] == "upstream_answer_too_large"


def test_an_endless_answer_is_cut_at_the_limit():
    with UpstreamServer(endless) as upstream, run_gateway(config(upstream.url)) as gw:
        answer = gw.http("POST", "/v1/chat/completions", CHAT, timeout=WAIT)
    assert answer.status == 502
    assert answer.json["error"]["code"] == "upstream_answer_too_large"


def test_a_stream_is_not_bounded_by_the_answer_limit():
    with UpstreamServer(big_stream) as upstream, run_gateway(config(upstream.url)) as gw:
        answer = gw.http("POST", "/v1/chat/completions", {**CHAT, "stream": True}, timeout=WAIT)
    assert answer.status == 200
    assert len(answer.body) > LIMIT
    assert answer.body.rstrip().endswith(b"data: [DONE]")


class HangingUpstream:
    """Reads one request, sends `head` (if any), then SSE comments every 0.1 s (if
    `comments`) or nothing, until the gateway closes the connection."""

    def __init__(self, head: bytes | None = None, comments: bool = False) -> None:
        self.sock = bound_socket("127.0.0.1")
        self.url = f"http://127.0.0.1:{port_of(self.sock)}/v1"
        self.head, self.comments = head, comments
        self.received = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.received.set()
            if self.head:
                conn.sendall(self.head)
            conn.settimeout(0.1 if self.comments else WAIT * 2)
            self._until_closed(conn)
        self.closed.set()

    def _until_closed(self, conn: socket.socket) -> None:
        for _ in range(int(WAIT * 20)):
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                if self.comments:
                    conn.sendall(b": keep-alive\n\n")
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        self._thread.join(WAIT * 3)


@pytest.fixture
def hanging() -> Iterator[HangingUpstream]:
    found = HangingUpstream()
    yield found
    found.close()


def send_and_leave(
    gw: RunningGateway, upstream: HangingUpstream, stream: bool, read: bool = True
) -> bytes:
    body = json.dumps({**CHAT, "stream": stream}).encode()
    with socket.create_connection((gw.host, gw.port), timeout=WAIT) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        assert upstream.received.wait(WAIT)
        first = sock.recv(65536) if stream and read else b""
    return first


def test_a_client_that_leaves_cancels_a_whole_request(hanging):
    with run_gateway(config(hanging.url)) as gw:
        send_and_leave(gw, hanging, stream=False)
        assert hanging.closed.wait(WAIT)


def test_a_client_that_leaves_before_a_streams_first_byte_cancels_it(hanging):
    # a stream is pointed at the relay before its upstream answers: the client's close still
    # reaches the upstream call, through mitmproxy's connection to the relay
    with run_gateway(config(hanging.url)) as gw:
        send_and_leave(gw, hanging, stream=True, read=False)
        assert hanging.closed.wait(WAIT)


def test_a_client_that_leaves_cancels_a_stream_of_comments():
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
    upstream = HangingUpstream(head, comments=True)
    try:
        with run_gateway(config(upstream.url)) as gw:
            first = send_and_leave(gw, upstream, stream=True)
            assert first.startswith(b"HTTP/1.1 200")
            assert upstream.closed.wait(WAIT)
    finally:
        upstream.close()
