"""Defects found by trying the gateway as an attacker and an unlucky operator (issue 13).

Through a real gateway: Gemini scalars where lists belong are a 400 (item 4); a chunked
request with trailers is answered 400, not left hanging (item 5); an unset `${VAR:-}` key is
a configuration error at start-up and in `modelway check` (item 9); admin endpoints need the
admin key (item 10); the access log bounds what the client wrote and logs a model only when
the configuration knows it (item 11); a stop with idle keep-alive connections logs no
CancelledError traceback (item 12).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelway.errors import ConfigError
from modelway.testing.fake_openai import openai_behavior
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import UpstreamServer

CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
MOCK = {"backends": {"m": {"provider": "mock"}}, "routes": [{"backend": "m"}]}
CONTENTS = [{"role": "user", "parts": [{"text": "hi"}]}]


@pytest.fixture
def openai_up():
    with UpstreamServer(openai_behavior) as server:
        yield server


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"generationConfig": {"responseModalities": 5}}, "generationConfig.responseModalities"),
        (
            {
                "tools": [{"functionDeclarations": [{"name": "f", "description": "d"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": 1}},
            },
            "toolConfig.functionCallingConfig.allowedFunctionNames",
        ),
    ],
)
@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent"])
def test_gemini_scalars_where_lists_belong_are_a_400(openai_up, extra, param, method):
    config = {
        "backends": {"up": {"provider": "openai", "base_url": openai_up.url, "api_key": "k"}},
        "routes": [{"backend": "up"}],
    }
    with run_gateway(config) as gw:
        answer = gw.http(
            "POST", f"/v1beta/models/gemini-x:{method}", {"contents": CONTENTS, **extra}
        )
    assert answer.status == 400, answer.body
    assert answer.json["error"]["status"] == "INVALID_ARGUMENT"
    assert param in answer.json["error"]["message"]
    assert openai_up.received == []


def raw_exchange(gw: RunningGateway, data: bytes, then: bytes = b"") -> list[bytes]:
    """Send `data` (and `then` on the same connection); each answer's head and body."""
    answers = []
    with socket.create_connection((gw.host, gw.port), timeout=10) as sock:
        for message in (data, then):
            if not message:
                continue
            sock.sendall(message)
            answers.append(_read_answer(sock))
    return answers


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_chunked_request_with_trailers_is_a_400_not_a_hang():
    body = json.dumps(CHAT).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\nX-Checksum: 1\r\n\r\n"
    )
    health = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
    with run_gateway(MOCK) as gw:
        refused, after = raw_exchange(gw, request, health)
    assert refused.startswith(b"HTTP/1.1 400")
    assert b'"code":"trailers"' in refused.replace(b" ", b"")
    assert after.startswith(b"HTTP/1.1 200")


UNSET_KEY = """
    gateway:
      api_keys: ["${MW_TEST_UNSET_GATEWAY_KEY:-}"]
    backends: {m: {provider: mock}}
    routes: [{backend: m}]
"""


def test_an_unset_key_variable_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_TEST_UNSET_GATEWAY_KEY", raising=False)
    with pytest.raises(ConfigError, match="key 0 is empty"):
        with run_gateway(UNSET_KEY, directory=tmp_path):
            pass


def test_check_reports_an_unset_key_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_TEST_UNSET_GATEWAY_KEY", raising=False)
    path = write_config(tmp_path, UNSET_KEY)
    done = subprocess.run(
        [sys.executable, "-m", "modelway.cli", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "key 0 is empty" in done.stdout + done.stderr


ADMIN = {
    "gateway": {"api_keys": ["sk-client"], "admin_keys": ["sk-admin"]},
    **MOCK,
}


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/modelway/reload"), ("GET", "/modelway/stats")]
)
def test_admin_endpoints_refuse_a_client_key(method, path):
    with run_gateway(ADMIN) as gw:
        refused = gw.http(method, path, headers={"authorization": "Bearer sk-client"})
        allowed = gw.http(method, path, headers={"authorization": "Bearer sk-admin"})
    assert refused.status in (401, 403), refused.body
    assert allowed.status == 200, allowed.body


@pytest.fixture
def logged(tmp_path: Path):
    log = tmp_path / "access.jsonl"

    def records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in log.read_text().splitlines()]

    config = {
        "plugins": {"access_log": {"path": str(log)}, "openai": None, "mock": None},
        "backends": {"m": {"provider": "mock"}},
        "routes": [
            {"match": {"model": "gpt-*"}, "backend": "m"},
            {"match": {"model": "named-model"}, "backend": "m"},
            {"match": {"model": "*"}, "backend": "m"},
        ],
    }
    return config, records


def test_the_access_log_bounds_the_path(logged):
    config, records = logged
    with run_gateway(config) as gw:
        gw.http("GET", "/v1/" + "x" * 20_000)
    [record] = records()
    assert len(record["path"]) < 300


@pytest.mark.parametrize(
    ("model", "logged_as"),
    [
        ("named-model", "named-model"),
        ("gpt-4o", "gpt-4o"),
        ("card 4111 1111 1111 1111", "unknown"),
        ("gpt-" + "x" * 5000, "unknown"),
    ],
)
def test_the_access_log_names_only_models_the_config_knows(logged, model, logged_as):
    config, records = logged
    with run_gateway(config) as gw:
        answer = gw.http("POST", "/v1/chat/completions", {**CHAT, "model": model})
    assert answer.status == 200
    [record] = records()
    assert (record["model"], record["upstream_model"]) == (logged_as, logged_as)


def test_stopping_with_idle_keep_alive_connections_logs_no_traceback(caplog):
    caplog.set_level(logging.ERROR)
    sockets = []
    try:
        with run_gateway({**MOCK, "gateway": {"shutdown_grace_seconds": 1}}) as gw:
            for _ in range(3):
                sock = socket.create_connection((gw.host, gw.port), timeout=10)
                sockets.append(sock)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in sockets:
            sock.close()
    assert "CancelledError" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("keys", [{"api_keys": ["sk-client"]}, {}])
def test_admin_endpoints_off_loopback_need_admin_keys(keys):
    """A listener that is not loopback-only (the flag the runner sets from the listen
    address) refuses admin endpoints without `admin_keys`, whatever client key is sent."""
    with run_gateway({**MOCK, "gateway": keys}) as gw:
        gw.server.engine.path.loopback = False
        answer = gw.http("POST", "/modelway/reload", headers={"authorization": "Bearer sk-client"})
    assert answer.status == 403
    assert answer.json["error"]["code"] == "admin_disabled"
