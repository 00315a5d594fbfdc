"""The test kit itself (`modelway.testing`): waits, ports, fake upstreams and their faults,
test gateways and what they report, the clock and sleep stand-ins."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import socket
import threading
from typing import Any

import aiohttp
import pytest

from modelway import hookimpl
from modelway.errors import ConfigError
from modelway.testing.clock import FakeClock, ManualSleep
from modelway.testing.fake_anthropic import AnthropicMessages
from modelway.testing.fake_gemini import api_key_check, gemini_behavior
from modelway.testing.gateway import GatewayStartError, config_text, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer, status_reply
from modelway.testing.wait import WaitTimeout, bound_socket, port_of, refused_port, wait_until

MOCK = {
    "plugins": ["mock"],
    "backends": {"m": {"provider": "mock"}},
    "routes": [{"match": {"model": "*"}, "backend": "m"}],
}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def get(server: UpstreamServer, path: str = "/v1/x") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# ----------------------------------------------------------------------------- waits and ports


def test_wait_until_returns_the_first_true_value():
    values = iter([None, 0, "", "found"])
    assert wait_until(lambda: next(values)) == "found"


def test_wait_until_says_what_it_waited_for():
    with pytest.raises(WaitTimeout, match=r"timed out after 0.05s waiting for the answer; last: 0"):
        wait_until(lambda: 0, timeout=0.05, what="the answer")


def test_a_refused_port_refuses_and_stays_reserved():
    with refused_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))


def test_a_bound_socket_reads_its_port_back():
    with bound_socket() as sock:
        assert port_of(sock) == sock.getsockname()[1] > 0


# ----------------------------------------------------------------------------- upstreams


def test_an_upstream_records_and_answers_through_its_behavior():
    with UpstreamServer(lambda r: Reply.json({"path": r.path}, status=201)) as server:
        assert get(server, "/v1/models?x=1") == (201, b'{"path": "/v1/models?x=1"}')
        (received,) = server.wait_for(1)
    assert (received.method, received.path) == ("GET", "/v1/models?x=1")
    assert server.url == f"http://127.0.0.1:{server.port}/v1"


def test_faults_status_garbage_and_a_mid_stream_drop():
    with UpstreamServer(status_reply(503, "down")) as server:
        status, body = get(server)
        assert status == 503 and b'"down"' in body
        server.behavior = lambda _: Reply(raw=b"NOT HTTP AT ALL\r\n\r\n")
        with pytest.raises(http.client.HTTPException):
            get(server)
        server.behavior = lambda _: Reply.sse([b"data: 1\n\n", b"data: 2\n\n"], drop_after=1)
        assert get(server) == (200, b"data: 1\n\n")  # then the connection closed


def test_a_behavior_that_raises_fails_the_test_that_used_it():
    def broken(received: Received) -> Reply:
        raise KeyError("oops")

    server = UpstreamServer(broken)
    with pytest.raises(AssertionError, match="KeyError: 'oops'"), server:
        assert get(server)[0] == 500


def test_stopping_cuts_a_stalled_reply_short():
    done = threading.Event()
    server = UpstreamServer(lambda _: Reply(stall=600)).start()

    def ask() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            get(server)
        done.set()

    threading.Thread(target=ask, daemon=True).start()
    server.wait_for(1)
    server.stop()
    assert done.wait(30), "the client was still waiting after the server stopped"


def test_a_gate_holds_a_stream_until_the_test_opens_it():
    with UpstreamServer() as server:
        gate = server.gate()

        def behave(received: Received) -> Reply:
            def chunks() -> Any:
                yield b"data: first\n\n"
                if gate.wait():
                    yield b"data: second\n\n"

            return Reply.sse(chunks())

        server.behavior = behave
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/v1/stream")
        response = connection.getresponse()
        assert response.readline() == b"data: first\n"
        response.readline()
        gate.open()
        assert response.read() == b"data: second\n\n"
        connection.close()


def test_a_gate_never_opened_reports_instead_of_hanging():
    server = UpstreamServer()
    gate = server.gate(timeout=0.01)
    server.behavior = lambda _: Reply(body=b"late") if gate.wait() else Reply(status=504)
    with pytest.raises(AssertionError, match=r"a gate was not opened within 0\.01s"), server:
        assert get(server)[0] == 504


def test_the_anthropic_fake_checks_what_the_api_checks():
    behavior = AnthropicMessages(api_key="sk-ant")
    headers = {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}
    body = b'{"model": "c", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]}'
    reply = behavior(Received("POST", "/v1/messages", headers, body))
    assert reply.status == 400
    assert behavior.problems == ["messages.0: roles must alternate, starting with user"]
    wrong_key = behavior(Received("POST", "/v1/messages", {**headers, "x-api-key": "no"}, body))
    assert wrong_key.status == 401


def test_the_gemini_fake_answers_streams_and_checks_the_key():
    behave = gemini_behavior("/v1beta/models/", api_key_check("AIza-1"))
    body = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}'
    path = "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    streamed = behave(Received("POST", path, {"x-goog-api-key": "AIza-1"}, body))
    assert streamed.headers["content-type"] == "text/event-stream"
    assert b"echo:" in b"".join(streamed.chunks or [])
    assert behave(Received("POST", path, {}, body)).status == 400


# ----------------------------------------------------------------------------- gateways


def test_a_gateway_from_a_dict_and_from_yaml_text(tmp_path):
    for config in (MOCK, config_text(MOCK)):
        with run_gateway(config) as gw:
            answer = gw.http("POST", "/v1/chat/completions", CHAT)
            assert answer.status == 200 and "mock reply" in answer.body.decode()
            assert answer.headers["x-modelway-backend"] == "m"


def test_a_bad_configuration_fails_before_anything_starts():
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        with run_gateway({"routes": [{"match": {"model": "*"}, "backend": "nope"}]}):
            pass


def test_a_port_in_use_is_reported():
    with bound_socket() as taken, pytest.raises(GatewayStartError) as failed:
        with run_gateway(MOCK, port=port_of(taken)):
            pass
    assert "mitmproxy" in str(failed.value) and "in use" in str(failed.value)


class LogsAtStartup:
    """A plugin that logs one ERROR record while the gateway starts."""

    def __init__(self, logger: str) -> None:
        self.logger = logger

    @hookimpl
    def modelway_startup(self, gateway: Any) -> None:
        logging.getLogger(self.logger).error("something went wrong somewhere")


def test_another_librarys_error_log_does_not_stop_a_starting_gateway():
    with run_gateway(MOCK, (("noisy", LogsAtStartup("asyncio")),)) as gw:
        assert gw.http("POST", "/v1/chat/completions", CHAT).status == 200


def test_modelways_own_error_log_still_stops_a_starting_gateway():
    with pytest.raises(GatewayStartError, match=r"modelway\.noisy: something went wrong"):
        with run_gateway(MOCK, (("noisy", LogsAtStartup("modelway.noisy")),)):
            pass


class LeaksASession:
    """A plugin that opens an aiohttp session at start-up and never closes it."""

    session: aiohttp.ClientSession | None = None

    @hookimpl
    def modelway_startup(self, gateway: Any) -> None:
        LeaksASession.session = aiohttp.ClientSession()


def test_a_session_left_open_fails_the_test_and_says_where_it_was_opened():
    with pytest.raises(AssertionError, match=r"left 1 aiohttp session\(s\) open") as failed:
        with run_gateway(MOCK, (("leaky", LeaksASession()),)):
            pass
    assert "in modelway_startup" in str(failed.value)
    assert LeaksASession.session is not None
    asyncio.run(LeaksASession.session.close())  # the test's own clean-up


def test_the_fixtures_run_a_gateway_in_front_of_an_upstream(modelway_gateway, openai_upstream):
    gw = modelway_gateway(
        {
            "plugins": ["openai"],
            "backends": {"up": {"provider": "openai", "base_url": openai_upstream.url}},
            "routes": [{"match": {"model": "*"}, "backend": "up"}],
        }
    )
    answer = gw.http("POST", "/v1/chat/completions", CHAT)
    assert answer.json["choices"][0]["message"]["content"] == "echo: hi"
    assert openai_upstream.last.json["model"] == "m"


# ----------------------------------------------------------------------------- time


def test_a_fake_clock_moves_only_when_told():
    clock = FakeClock(start=5.0)
    assert clock() == 5.0
    assert clock.advance(2.5) == clock() == 7.5


def test_a_manual_sleep_waits_for_release():
    sleep = ManualSleep()
    order: list[str] = []

    async def sleeper() -> None:
        await sleep(3600)
        order.append("woke")

    async def main() -> None:
        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        assert sleep.delays == [3600] and order == []
        sleep.release()
        await task

    asyncio.run(main())
    assert order == ["woke"]
