"""Configuration reload: canary percentages change with no failed or dropped request.

Reload comes by `GatewayServer.reload()` (what SIGHUP, `--watch` and the admin endpoint
call), under load from several client threads, streamed and not.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from modelway.errors import ConfigError
from modelway.testing.gateway import run_gateway
from modelway.testing.upstreams import UpstreamServer
from modelway.testing.wait import wait_until

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
        self.client.close()


def done_at_least(load: Load, count: int) -> Callable[[], bool]:
    return lambda: load.done >= count


def test_canary_percentage_changes_under_load_with_no_failed_request(tmp_path):
    with UpstreamServer() as stable, UpstreamServer() as canary:
        path = tmp_path / "gateway.yaml"
        canary_config(path, stable, canary, percent=0)
        with run_gateway(path) as gw, Load(gw.base_url) as load:
            wait_until(done_at_least(load, 40), timeout=30)
            assert canary.received == []
            canary_config(path, stable, canary, percent=50)
            gw.call(gw.server.reload())
            wait_until(done_at_least(load, load.done + 80), timeout=30)
            canary_config(path, stable, canary, percent=100)
            gw.call(gw.server.reload())
            stable_count = len(stable.received)
            wait_until(done_at_least(load, load.done + 40), timeout=30)
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
            client = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0))
            answer = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "still"}]
            )
    assert answer.choices[0].message.content == "echo: still"


def listening_port(process: subprocess.Popen[str]) -> int:
    """The port `modelway run --port 0` reports on its first line of stderr."""
    line = process.stderr.readline() if process.stderr else ""
    found = re.search(r"listening on http://127\.0\.0\.1:(\d+) ", line)
    assert found is not None, line
    return int(found.group(1))


def touch_later(path: Path) -> None:
    """A modification time two seconds on, so a watcher sees a change on any file system."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


@pytest.mark.slow
@pytest.mark.parametrize("trigger", ["sighup", "watch"])
def test_reload_by_signal_and_by_file_watch(tmp_path, trigger):
    modelway = str(Path(sys.executable).with_name("modelway"))
    with UpstreamServer() as stable, UpstreamServer() as canary:
        path = tmp_path / "gateway.yaml"
        canary_config(path, stable, canary, percent=0)
        args = [modelway, "run", "-c", str(path), "--port", "0"]
        process = subprocess.Popen(
            [*args, "--watch"] if trigger == "watch" else args,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "OPENAI_API_KEY": ""},
        )
        try:
            port = listening_port(process)
            with openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0
            ) as client:
                ask = lambda: client.chat.completions.create(  # noqa: E731
                    model="m", messages=[{"role": "user", "content": "x"}]
                )
                ask()
                canary_config(path, stable, canary, percent=100)
                touch_later(path)
                if trigger == "sighup":
                    process.send_signal(signal.SIGHUP)

                def switched() -> bool:
                    ask()
                    return bool(canary.received)

                wait_until(switched, timeout=20)
        finally:
            process.terminate()
            process.wait(30)
            if process.stderr:
                process.stderr.close()
    assert process.returncode == 0
