"""Configuration reload: canary percentages change with no failed or dropped request.

Reload comes by `GatewayServer.reload()` (what SIGHUP, `--watch` and the admin endpoint
call), under load from several client threads, streamed and not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from modelway.errors import ConfigError
from tests.harness import run_gateway
from tests.upstreams import UpstreamServer

CONFIG = """
plugins: [openai]
gateway: {{shutdown_grace_seconds: 2}}
backends:
  stable: {{provider: openai, base_url: "{stable}"}}
  canary: {{provider: openai, base_url: "{canary}"}}
routes:
  - name: chat
    match: {{model: "*"}}
    split:
      targets:
        - {{backend: stable, weight: {stable_weight}}}
        - {{backend: canary, weight: {canary_weight}}}
"""


def canary_config(path: Path, stable: UpstreamServer, canary: UpstreamServer, percent: int) -> None:
    text = CONFIG.format(
        stable=stable.url, canary=canary.url, stable_weight=100 - percent, canary_weight=percent
    )
    path.write_text(text)


class Load:
    """Client threads sending requests until stopped; every failure is kept."""

    def __init__(self, base_url: str, threads: int = 4) -> None:
        self.client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=30)
        self.failures: list[BaseException] = []
        self.done = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                self._one(stream=index % 2 == 1)
                self.done += 1
            except Exception as exc:  # collected and asserted on by the test
                self.failures.append(exc)

    def _one(self, stream: bool) -> None:
        messages = [{"role": "user", "content": "ping pong"}]
        if stream:
            chunks = self.client.chat.completions.create(model="m", messages=messages, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = self.client.chat.completions.create(model="m", messages=messages)
            text = answer.choices[0].message.content or ""
        assert text == "echo: ping pong", text

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def wait_for(predicate, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_canary_percentage_changes_under_load_with_no_failed_request(tmp_path):
    with UpstreamServer() as stable, UpstreamServer() as canary:
        path = tmp_path / "gateway.yaml"
        canary_config(path, stable, canary, percent=0)
        with run_gateway(path) as gw, Load(gw.base_url) as load:
            wait_for(lambda: load.done >= 40)
            assert canary.received == []
            canary_config(path, stable, canary, percent=50)
            gw.call(gw.server.reload())
            before = load.done
            wait_for(lambda: load.done >= before + 80)
            canary_config(path, stable, canary, percent=100)
            gw.call(gw.server.reload())
            stable_count = len(stable.received)
            before = load.done
            wait_for(lambda: load.done >= before + 40)
            late_stable = len(stable.received) - stable_count
        assert load.failures == []
        assert len(canary.received) > 0
        assert late_stable <= 4  # at most the requests in flight when the switch happened
        assert load.done == len(stable.received) + len(canary.received)


def test_invalid_reload_keeps_the_running_configuration(tmp_path):
    with UpstreamServer() as stable, UpstreamServer() as canary:
        path = tmp_path / "gateway.yaml"
        canary_config(path, stable, canary, percent=0)
        with run_gateway(path) as gw:
            path.write_text("routes: [{backend: nowhere}]\n")
            with pytest.raises(ConfigError):
                gw.call(gw.server.reload())
            client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
            answer = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "still"}]
            )
    assert answer.choices[0].message.content == "echo: still"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("trigger", ["sighup", "watch"])
def test_reload_by_signal_and_by_file_watch(tmp_path, trigger):
    modelway = str(Path(sys.executable).with_name("modelway"))
    with UpstreamServer() as stable, UpstreamServer() as canary:
        path = tmp_path / "gateway.yaml"
        canary_config(path, stable, canary, percent=0)
        port = free_port()
        args = [modelway, "run", "-c", str(path), "--port", str(port)]
        process = subprocess.Popen(
            [*args, "--watch"] if trigger == "watch" else args,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "OPENAI_API_KEY": ""},
        )
        try:
            assert "listening on" in (process.stderr.readline() if process.stderr else "")
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0
            )
            ask = lambda: client.chat.completions.create(  # noqa: E731
                model="m", messages=[{"role": "user", "content": "x"}]
            )
            ask()
            time.sleep(1.1)  # a new modification time, even on coarse file systems
            canary_config(path, stable, canary, percent=100)
            if trigger == "sighup":
                process.send_signal(signal.SIGHUP)

            def switched() -> bool:
                ask()
                return bool(canary.received)

            wait_for(switched)
        finally:
            process.terminate()
            process.wait(30)
    assert process.returncode == 0
