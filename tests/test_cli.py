"""The `modelway` console script and the addon under plain `mitmdump`, as real subprocesses.

The executables are the ones installed next to the running interpreter, so these tests run
whatever the test environment installed.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import openai
import pytest

from modelway.addons import gateway as gateway_addon
from modelway.testing.fake_openai import openai_stream_chunks
from modelway.testing.gateway import write_config
from modelway.testing.upstreams import Gate, Received, Reply, UpstreamServer
from modelway.testing.wait import wait_until

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MODELWAY = str(BIN / "modelway")
MITMDUMP = str(BIN / "mitmdump")
START_TIMEOUT = 60.0


def environment() -> dict[str, str]:
    """The test's environment without OPENAI_API_KEY (the default config then skips OpenAI)."""
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


def modelway_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODELWAY, *args], capture_output=True, text=True, timeout=60,
                          env=environment())


class Process:
    """A long-running subprocess whose output lines are collected as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.args = args
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=cwd, env=environment())
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines[name].append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def text(self, name: str = "stderr") -> str:
        with self._changed:
            return "\n".join(self.lines[name])

    def wait_for(self, needle: str, name: str = "stderr", timeout: float = START_TIMEOUT) -> str:
        """The first `name` line containing `needle`; fails if the process ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines[name] if needle in line), None)
                if found is not None:
                    return found
                ended = self.popen.poll() is not None and not any(
                    r.is_alive() for r in self._readers)
                left = deadline - time.monotonic()
                if ended or left <= 0:
                    pytest.fail(f"{self.args[0]} never printed {needle!r} on {name} "
                                f"(exit code {self.popen.poll()}):\n{self.text('stdout')}\n"
                                f"{self.text('stderr')}")
                self._changed.wait(min(left, 0.2))

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        return code

    def port(self) -> int:
        """The port `modelway run --port 0` reports it listens on."""
        line = self.wait_for("listening on")
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+) ", line)
        assert found is not None, line
        return int(found.group(1))

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        """Kill the process if a test left it running (a failing test must not leak it)."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.wait(30)


def mock_config(tmp_path: Path, grace: float, chunk_delay_ms: int, reply: str) -> Path:
    return write_config(tmp_path, f"""
        gateway: {{shutdown_grace_seconds: {grace}}}
        plugins: [mock]
        backends:
          m: {{provider: mock, chunk_delay_ms: {chunk_delay_ms}, reply: "{reply}"}}
        routes:
          - {{name: chat, match: {{model: mock}}, backend: m}}
    """)


@contextmanager
def open_stream(port: int) -> Iterator[http.client.HTTPResponse]:
    """A streamed chat request for `mock`, read line by line by the caller."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        body = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        connection.request("POST", "/v1/chat/completions", json.dumps(body),
                           {"content-type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        yield response
    finally:
        connection.close()


def gated_stream(upstream: UpstreamServer, reply: str) -> Gate:
    """Make `upstream` stream `reply` word by word: the first word at once, the rest when the
    test opens the gate it returns."""
    gate = upstream.gate()

    def behave(received: Received) -> Reply:
        chunks = openai_stream_chunks(received.json, reply.split(" "))

        def produce() -> Iterator[bytes]:
            yield chunks[0]
            if gate.wait():
                yield from chunks[1:]

        return Reply.sse(produce())

    upstream.behavior = behave
    return gate


def upstream_config(tmp_path: Path, grace: float, upstream: UpstreamServer) -> Path:
    return write_config(tmp_path, f"""
        gateway: {{shutdown_grace_seconds: {grace}}}
        plugins: [openai]
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-up}}
        routes:
          - {{name: chat, match: {{model: mock}}, backend: up}}
    """)


def next_event(response: http.client.HTTPResponse) -> str | None:
    """The next `data: ...` line of an SSE stream, or None at its end."""
    while line := response.readline():
        if line.startswith(b"data: "):
            return line.decode().strip()
    return None


def rest_of_stream(response: http.client.HTTPResponse) -> tuple[list[str], Exception | None]:
    events: list[str] = []
    try:
        while (event := next_event(response)) is not None:
            events.append(event)
    except (http.client.HTTPException, OSError) as exc:
        return events, exc
    return events, None


def streamed_text(events: list[str]) -> str:
    chunks = [json.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c["choices"])


def refused(port: int) -> bool:
    """Whether a new connection to `port` is refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------- check


def test_check_valid_config_describes_it(tmp_path):
    config = write_config(tmp_path, """
        gateway: {port: 9099}
        plugins: [mock, openai]
        backends:
          m: {provider: mock}
          up: {provider: openai, base_url: "http://127.0.0.1:1/v1", model: gpt-x, api_key: sk}
        routes:
          - name: chat
            match: {model: [mock, "mock-*"]}
            split:
              targets: [{backend: m, weight: 3}, {backend: up, weight: 1}]
          - {match: {model: "gpt-*"}, backend: up}
    """)
    result = modelway_cli("check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"configuration {config} is valid",
        "listen: 127.0.0.1:9099 (reverse mode)",
        "plugins: openai_api, router, access_log, mock, openai",
        "state: memory",
        "backends:",
        "  m: provider=mock model=(client's model) url=(provider default)",
        "  up: provider=openai model=gpt-x url=http://127.0.0.1:1/v1",
        "routes:",
        "  chat: model=['mock', 'mock-*'] path=* -> m(weight 3), up(weight 1); policies: none",
        "  route1: model=['gpt-*'] path=* -> up(weight 1); policies: none",
        "upstream limits: connect 10s, first_byte none, idle 600s, total none; whole answers "
        "up to 67108864 bytes",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("gateway: {port: 70000}\n",
         ":1: gateway.port: Input should be less than or equal to 65535"),
        ("plugins: [mock]\nbackends:\n  m: {provider: mock}\n"
         "routes:\n  - {match: {model: x}, backend: nope}\n",
         ":5: routes[0].backend: unknown backend 'nope' (backends: m)"),
        ("plugins: [mock]\nbackends:\n  m: {provider: mock, chunk_delay_ms: -1}\n",
         ":3: backends.m.chunk_delay_ms: Input should be greater than or equal to 0"),
    ],
    ids=["schema", "unknown-backend", "provider-option"],
)
def test_check_invalid_config_reports_file_path_and_message(tmp_path, text, problem):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = modelway_cli("check", "-c", str(config))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{config}{problem}" in result.stderr
    assert result.stderr.startswith("modelway: invalid configuration")
    assert "Traceback" not in result.stderr


def test_check_unreadable_config(tmp_path):
    result = modelway_cli("check", "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert f"{tmp_path / 'missing.yaml'}: cannot read the configuration" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------- plugins


def test_plugins_lists_builtins():
    result = modelway_cli("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "status", "origin"]
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:]}
    assert rows["openai_api"] == ["core", "built-in (modelway.plugins.ingress.openai)"]
    assert rows["router"] == ["core", "built-in (modelway.plugins.traffic.router)"]
    assert rows["access_log"] == [
        "core", "built-in (modelway.plugins.ops.access_log:AccessLogPlugin)"]
    assert rows["openai"] == ["enabled", "built-in (modelway.plugins.providers.openai)"]
    assert rows["mock"] == ["enabled", "built-in (modelway.plugins.providers.mock)"]


# ------------------------------------------------------------------------------- run


def test_run_with_the_packaged_default_config(tmp_path):
    with Process([MODELWAY, "run", "--port", "0"], tmp_path) as process:
        port = process.port()
        assert f"http://127.0.0.1:{port} (reverse mode)" in process.wait_for("listening on")
        assert "backend 'openai' is skipped" in process.text()
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="any",
                           max_retries=0, timeout=30) as client:
            answer = client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": "hi there"}])
            models = [m.id for m in client.models.list()]
        process.popen.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert answer.choices[0].message.content == (
        "This is a mock reply from modelway. You said: hi there")
    assert answer.model == "mock/mock"
    assert "mock" in models
    record = json.loads(process.lines["stdout"][0])
    assert (record["route"], record["backend"], record["status"]) == ("mock", "mock", 200)


REPLY = " ".join(f"word{i}" for i in range(16))


def test_sigterm_lets_an_inflight_stream_finish(tmp_path, upstream):
    gate = gated_stream(upstream, REPLY)
    config = upstream_config(tmp_path, 30, upstream)
    with (
        Process([MODELWAY, "run", "-c", str(config), "--port", "0"], tmp_path) as process,
        open_stream(process.port()) as stream,
    ):
        first = next_event(stream)
        assert first is not None
        process.popen.send_signal(signal.SIGTERM)
        process.wait_for("stopping: no new connections")
        wait_until(lambda: refused(process.port()), what="the listening socket to close")
        assert process.popen.poll() is None, "the gateway exited before its stream finished"
        gate.open()
        events, broken = rest_of_stream(stream)
        assert process.wait(30) == 0
    assert broken is None
    assert events[-1] == "data: [DONE]"
    assert streamed_text([first, *events]) == REPLY
    assert "grace period over" not in process.text()


def test_sigterm_grace_period_bounds_a_long_stream(tmp_path, upstream):
    gated_stream(upstream, REPLY)  # never opened: the stream would last forever
    config = upstream_config(tmp_path, 0.3, upstream)
    with (
        Process([MODELWAY, "run", "-c", str(config), "--port", "0"], tmp_path) as process,
        open_stream(process.port()) as stream,
    ):
        assert next_event(stream) is not None
        process.popen.send_signal(signal.SIGTERM)
        process.wait_for("grace period over with 1 request(s) in flight")
        try:
            code: int | None = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            pytest.fail("the gateway was still running (and streaming) 10 s after its 0.3 s "
                        "grace period ended")
        events, _ = rest_of_stream(stream)
    assert code == 0
    assert "data: [DONE]" not in events


# ------------------------------------------------------------------------------- mitmdump


def test_addon_under_plain_mitmdump(tmp_path):
    config = mock_config(tmp_path, grace=1, chunk_delay_ms=0, reply="hello from mitmdump")
    args = [MITMDUMP, "--mode", "reverse:http://127.0.0.1:9", "--set", "connection_strategy=lazy",
            "-s", gateway_addon.__file__, "--set", f"modelway_config={config}", "-p", "0"]
    with Process([*args], tmp_path) as process:
        line = process.wait_for("listening at *:", name="stdout")
        found = re.search(r"listening at \*:(\d+)", line)
        assert found is not None, line
        with openai.OpenAI(base_url=f"http://127.0.0.1:{found.group(1)}/v1", api_key="any",
                           max_retries=0, timeout=30) as client:
            answer = client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": "hi"}])
            stream = client.chat.completions.create(
                model="mock", messages=[{"role": "user", "content": "hi"}], stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        process.popen.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert answer.choices[0].message.content == "hello from mitmdump"
    assert answer.model == "mock/mock"
    assert streamed == "hello from mitmdump"
    records = [json.loads(line) for line in process.lines["stdout"] if line.startswith("{")]
    assert [(r["route"], r["stream"], r["status"]) for r in records] == [
        ("chat", False, 200), ("chat", True, 200)]
