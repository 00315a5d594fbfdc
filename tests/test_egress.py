"""No request leaves the gateway except through its own upstream call (issue 13, items 3, 13).

A listener stands where a fall-through would go: on the reverse target (reverse mode), on an
intercepted host (forward mode), on a host that is not intercepted (forward mode, plain
HTTP). Requests whose error answer is hard to build (bytes that are not UTF-8 in the path,
the `Content-Type`, the key; lone surrogates in a Gemini role or function name) are sent
raw; each is answered by the gateway in JSON and the listener receives nothing. A request
the engine fails on is finished too (the gateway is left with nothing in flight), and its
traceback is never logged with the client's text.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from modelway import runner
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.wait import bound_socket, port_of

SECRET_TEXT = "4111-1111-1111-1111"
BODY = b'{"model":"mock","messages":[{"role":"user","content":"hi"}]}'
GEMINI_ROLE = (
    '{"contents":[{"role":"\\ud800","parts":[{"text":"' + SECRET_TEXT + '"}]}]}'
).encode()
GEMINI_FUNCTION = (
    '{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":'
    '[{"name":"f\\ud800","description":"' + SECRET_TEXT + '"}]}]}'
).encode()


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection (and answers 200)."""

    def __init__(self) -> None:
        self.sock = bound_socket("127.0.0.1")
        self.port = port_of(self.sock)
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536) or b"<connected>")
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nLEAKED")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self) -> None:
        with __import__("contextlib").suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    try:
        yield found
    finally:
        found.close()


def raw(gw: RunningGateway, data: bytes) -> bytes:
    """Send raw bytes, read the answer until the gateway closes or 5 s of silence."""
    with socket.create_connection((gw.host, gw.port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except TimeoutError:
            pass
    return out


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def post(target: str, path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (path, target.encode())
    head += b"Content-Type: application/json\r\n" if b"content-type" not in extra.lower() else b""
    return head + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def hard_requests(target: str, prefix: bytes = b"") -> list[bytes]:
    host = target.encode()
    key = b"Authorization: Bearer sk-client\r\n"
    return [
        b"GET %s/\xff HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (prefix, host, key),
        b"GET %s/v1/models/\xff HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (prefix, host, key),
        post(target, prefix + b"/v1/chat/completions", BODY, key + b"Content-Type: a/\xff\r\n"),
        b"GET %s/v1/models HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer \xff\r\n\r\n"
        % (prefix, host),
        post(target, prefix + b"/v1beta/models/gemini-x:generateContent", GEMINI_ROLE, key),
        post(target, prefix + b"/v1beta/models/gemini-x:generateContent", GEMINI_FUNCTION, key),
    ]


CONFIG = {
    "gateway": {"api_keys": ["sk-client"]},
    "backends": {"m": {"provider": "mock"}},
    "routes": [{"backend": "m"}],
}


def assert_answered(answer: bytes) -> None:
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
    assert b"LEAKED" not in answer
    assert b"application/json" in answer.lower()


def test_reverse_mode_never_falls_through_to_the_target(listener, monkeypatch, caplog):
    monkeypatch.setattr(runner, "_UNUSED_TARGET", f"reverse:http://127.0.0.1:{listener.port}")
    caplog.set_level(logging.INFO)
    with run_gateway(CONFIG) as gw:
        for request in hard_requests(f"127.0.0.1:{gw.port}"):
            assert_answered(raw(gw, request))
        assert gw.server.engine.inflight == 0
    assert listener.received == []
    assert SECRET_TEXT not in caplog.text and "\udcff" not in caplog.text


def test_a_request_the_engine_cannot_read_is_answered_and_finished(listener, monkeypatch):
    """The key check itself fails on a key that is not UTF-8: still an answer, and the request
    is not left in flight (which held shutdown for the whole grace period)."""
    monkeypatch.setattr(runner, "_UNUSED_TARGET", f"reverse:http://127.0.0.1:{listener.port}")
    with run_gateway(CONFIG) as gw:
        answer = raw(gw, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: \xff\xfe\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert gw.server.engine.inflight == 0
    assert listener.received == []


def forward_config(**gateway: object) -> dict[str, object]:
    settings = {"api_keys": ["sk-client"], "intercept_hosts": ["127.0.0.1"], **gateway}
    return {**CONFIG, "gateway": settings}


def test_forward_mode_never_falls_through_to_an_intercepted_host(listener):
    target = f"127.0.0.1:{listener.port}"
    with run_gateway(forward_config(), mode="forward") as gw:
        for request in hard_requests(target, b"http://" + target.encode()):
            assert_answered(raw(gw, request))
        unmatched = raw(
            gw, b"GET http://%s/nothing HTTP/1.1\r\nHost: %s\r\n\r\n" % ((target.encode(),) * 2)
        )
        assert unmatched.startswith(b"HTTP/1.1 403"), unmatched[:200]
    assert listener.received == []


def test_forward_mode_refuses_plain_http_to_other_hosts(listener):
    target = f"localhost:{listener.port}".encode()
    with run_gateway(forward_config(), mode="forward") as gw:
        answer = raw(gw, b"GET http://%s/private HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"plain_http_denied" in answer
    assert listener.received == []


def test_forward_mode_passes_plain_http_to_other_hosts_when_configured(listener):
    target = f"localhost:{listener.port}".encode()
    with run_gateway(forward_config(plain_http="pass"), mode="forward") as gw:
        answer = raw(gw, b"GET http://%s/open HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
    assert answer.endswith(b"LEAKED")
    assert listener.received[0].startswith(b"GET /open")


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"mode": "forward"}, "plain HTTP to hosts that are not LLM hosts is refused"),
        ({"mode": "forward", "plain_http": "pass"}, "this is an open HTTP proxy"),
    ],
)
def test_check_says_what_forward_mode_does_with_plain_http(tmp_path, settings, said):
    path = tmp_path / "gateway.yaml"
    path.write_text(json.dumps({**CONFIG, "gateway": settings}))
    done = subprocess.run(
        [sys.executable, "-m", "modelway.cli", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert said in done.stdout
