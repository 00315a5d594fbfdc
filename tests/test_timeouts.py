"""The timeout model through a real gateway: connect, first byte, idle, total (issue 13, item 1).

Upstreams that are silent, whose accept queue is full, or that trickle one byte at a time,
against timeouts of a fraction of a second. Each test asserts the outcome (a 504 in the
client's API shape, a failover to the backup, an error event that ends a stream), never how
fast it came: the faulty upstreams would keep going for a minute, far past any client wait.
Also: the levels (gateway, backend, route; the route wins), the older names
(`upstream_timeout_seconds`, a backend's `timeout_seconds`, `first_byte_timeout_seconds`)
and the failover trigger each timeout is.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from modelway.config import GatewayConfig
from modelway.testing.fake_openai import openai_behavior, openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.testing.wait import bound_socket, port_of

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "alpha beta"}]}
MESSAGES = {
    "model": "gpt-test",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "alpha beta"}],
}
LONG = 60.0
"""How long a faulty upstream keeps going (it stops at once when the test ends)."""


def silent(received: Received) -> Reply:
    reply = openai_behavior(received)
    reply.stall = LONG
    return reply


def trickling(received: Received) -> Reply:
    """Headers at once, then one byte of the body every 0.05 s for a minute."""
    return Reply(chunks=(b" " for _ in range(int(LONG / 0.05))), delay=0.05)


def slow_stream(received: Received) -> Reply:
    """A stream whose events come 0.1 s apart, for a minute."""
    chunks = openai_stream_chunks(received.json)
    head, tail = chunks[0], chunks[1]
    return Reply.sse([head, *([tail] * int(LONG / 0.1))], delay=0.1)


def config(
    primary: str,
    gateway: dict[str, Any] | None = None,
    backend: dict[str, Any] | None = None,
    route: dict[str, Any] | None = None,
    backup: str | None = None,
) -> dict[str, Any]:
    backends: dict[str, Any] = {
        "primary": {"provider": "openai", "base_url": primary, "api_key": "k", **(backend or {})}
    }
    routes: dict[str, Any] = {"backend": "primary", **(route or {})}
    if backup is not None:
        backends["backup"] = {"provider": "openai", "base_url": backup, "api_key": "k"}
        routes.setdefault("failover", {})
        routes["failover"] = {"groups": [["backup"]], **routes["failover"]}
    return {"gateway": gateway or {}, "backends": backends, "routes": [routes]}


def chat(gw: RunningGateway, body: dict[str, Any] = CHAT) -> Any:
    return gw.http("POST", "/v1/chat/completions", body, timeout=LONG / 2)


def assert_timeout(answer: Any) -> None:
    assert answer.status == 504, answer.body
    assert answer.json["error"]["code"] == "upstream_timeout"


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(silent) as server:
        yield server


@pytest.fixture
def backup() -> Iterator[UpstreamServer]:
    with UpstreamServer(openai_behavior) as server:
        yield server


def test_upstream_timeout_seconds_bounds_a_silent_backend(upstream):
    with run_gateway(config(upstream.url, {"upstream_timeout_seconds": 0.3})) as gw:
        assert_timeout(chat(gw))


def test_idle_timeout_answers_in_the_clients_api_shape(upstream):
    with run_gateway(config(upstream.url, {"timeouts": {"idle": 0.3}})) as gw:
        answer = gw.http("POST", "/v1/messages", MESSAGES, timeout=LONG / 2)
    assert answer.status == 504
    assert answer.json["type"] == "error"
    assert answer.json["error"]["type"] == "timeout_error"


@pytest.fixture
def full_backlog() -> Iterator[str]:
    """A backend whose accept queue is full: connecting to it hangs (the SYN is dropped)."""
    listener = bound_socket("127.0.0.1", listen=False)
    listener.listen(0)
    port = port_of(listener)
    fillers: list[socket.socket] = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connect_timeout_fails_over_from_a_full_accept_queue(full_backlog, backup):
    settings = {"timeouts": {"connect": 0.3}}
    with run_gateway(config(full_backlog, settings, backup=backup.url)) as gw:
        answer = chat(gw)
    assert answer.status == 200, answer.body
    assert answer.headers["x-modelway-backend"] == "backup"


def test_connect_timeout_is_a_504_without_a_backup(full_backlog):
    with run_gateway(config(full_backlog, {"timeouts": {"connect": 0.3}})) as gw:
        assert_timeout(chat(gw))


def test_total_timeout_bounds_a_trickle(upstream):
    upstream.behavior = trickling
    settings = {"timeouts": {"idle": 5, "total": 0.5}}
    with run_gateway(config(upstream.url, settings)) as gw:
        assert_timeout(chat(gw))


def test_total_timeout_of_a_trickle_fails_over(upstream, backup):
    upstream.behavior = trickling
    settings = {"timeouts": {"idle": 5, "total": 0.5}}
    with run_gateway(config(upstream.url, settings, backup=backup.url)) as gw:
        answer = chat(gw)
    assert answer.status == 200, answer.body
    assert answer.headers["x-modelway-backend"] == "backup"


def test_total_timeout_ends_a_stream_with_an_error_event(upstream):
    upstream.behavior = slow_stream
    with run_gateway(config(upstream.url, {"timeouts": {"total": 0.5}})) as gw:
        answer = chat(gw, {**CHAT, "stream": True})
    assert answer.status == 200
    events = [line[6:] for line in answer.body.decode().splitlines() if line.startswith("data: ")]
    assert json.loads(events[0])["choices"]
    assert json.loads(events[-1])["error"]["code"] == "upstream_timeout"


def test_first_byte_timeout_is_the_slow_trigger(upstream, backup):
    route = {"timeouts": {"first_byte": 0.3}, "failover": {"retry_on": ["slow"]}}
    with run_gateway(config(upstream.url, route=route, backup=backup.url)) as gw:
        answer = chat(gw)
    assert answer.status == 200, answer.body
    assert answer.headers["x-modelway-backend"] == "backup"


def test_idle_timeout_is_the_timeout_trigger(upstream, backup):
    route = {"failover": {"retry_on": ["timeout"]}}
    with run_gateway(
        config(upstream.url, {"timeouts": {"idle": 0.3}}, route=route, backup=backup.url)
    ) as gw:
        answer = chat(gw)
    assert answer.headers["x-modelway-backend"] == "backup"


def test_a_timeout_outside_retry_on_is_not_retried(upstream, backup):
    route = {"failover": {"retry_on": ["5xx"]}}
    with run_gateway(
        config(upstream.url, {"timeouts": {"idle": 0.3}}, route=route, backup=backup.url)
    ) as gw:
        assert_timeout(chat(gw))
    assert backup.received == []


def test_a_backend_override_beats_the_gateway(upstream):
    cfg = config(
        upstream.url, {"timeouts": {"idle": LONG * 2}}, backend={"timeouts": {"idle": 0.3}}
    )
    with run_gateway(cfg) as gw:
        assert_timeout(chat(gw))


def test_a_backends_timeout_seconds_is_its_idle_timeout(upstream):
    cfg = config(upstream.url, {"timeouts": {"idle": LONG * 2}}, backend={"timeout_seconds": 0.3})
    with run_gateway(cfg) as gw:
        assert_timeout(chat(gw))


def test_a_route_override_beats_the_backend(upstream):
    """The backend would time out at once; the route allows the short stall."""

    def stalling(received: Received) -> Reply:
        reply = openai_behavior(received)
        reply.stall = 0.5
        return reply

    upstream.behavior = stalling
    backend = {"timeouts": {"idle": 0.05}}
    route = {"timeouts": {"idle": LONG}}
    with run_gateway(config(upstream.url, backend=backend, route=route)) as gw:
        answer = chat(gw)
    assert answer.status == 200, answer.body


def test_older_names_fill_the_timeout_model():
    settings = GatewayConfig.model_validate(
        {"gateway": {"connect_timeout_seconds": 3, "upstream_timeout_seconds": 7}}
    ).gateway
    assert (settings.timeouts.connect, settings.timeouts.idle) == (3, 7)
    default = GatewayConfig.model_validate({}).gateway.timeouts
    assert (default.connect, default.first_byte, default.idle, default.total) == (
        10,
        None,
        600,
        None,
    )


def silent_after_first_event(received: Received) -> Reply:
    """One event, then silence for a minute."""
    chunks = openai_stream_chunks(received.json)
    return Reply.sse([chunks[0], chunks[1]], delay=LONG)


def test_idle_timeout_ends_a_silent_stream_with_an_error_event(upstream):
    upstream.behavior = silent_after_first_event
    with run_gateway(config(upstream.url, {"timeouts": {"idle": 0.3}})) as gw:
        answer = chat(gw, {**CHAT, "stream": True})
    assert answer.status == 200
    events = [line[6:] for line in answer.body.decode().splitlines() if line.startswith("data: ")]
    assert json.loads(events[0])["choices"]
    assert json.loads(events[-1])["error"]["code"] == "upstream_timeout"
