"""`modelway run --workers N`: N processes on one port sharing Redis, reloaded and stopped
together; without shared state it refuses to start with a clear message."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modelway.testing.gateway import write_config
from tests.governance_kit import ask, hashed
from tests.processes import GatewayProcess, wait_for
from tests.redis_server import redis_server  # noqa: F401

pytestmark = pytest.mark.slow


def config(tmp_path, upstream, state: str, model: str = "gpt-*"):
    return write_config(tmp_path, f"""
        gateway: {{shutdown_grace_seconds: 2}}
        {state}
        plugins:
          openai: null
          access_log: {{enabled: false}}
          keys:
            keys: [{{hash: "{hashed('sk-w')}", consumer: w, limits: {{requests_per_minute: 5}}}}]
          limits: null
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-gw}}
        routes:
          - {{name: chat, match: {{model: "{model}"}}, backend: up}}
    """)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_more_than_one_worker_needs_redis(tmp_path, upstream):
    path = config(tmp_path, upstream, "")
    done = subprocess.run([sys.executable, "-m", "modelway.cli", "run", "-c", str(path),
                           "--port", "0", "--workers", "2"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "--workers 2 needs state that the workers share" in done.stderr
    assert "store: redis" in done.stderr


def test_two_workers_share_one_port_and_one_limit(tmp_path, upstream, redis_server):  # noqa: F811
    state = f'state: {{store: redis, url: "{redis_server.url}"}}'
    path = config(tmp_path, upstream, state)
    with GatewayProcess(path, "--workers", "2") as gateway:
        assert gateway.log().count("listening on") == 1 and "2 workers" in gateway.log()
        assert gateway.process is not None
        workers = children(gateway.process.pid)
        assert len(workers) == 2
        statuses = [ask(gateway.url, "openai", "sk-w", "gpt-test")[0] for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3  # one limit for both workers
        path.write_text(path.read_text().replace('model: "gpt-*"', 'model: "*"'))
        gateway.signal(signal.SIGHUP)
        # Each new connection may land on either worker: all must have reloaded.
        reloaded = wait_for(lambda: all(
            ask(gateway.url, "openai", "sk-w", "other-model")[0] == 429 for _ in range(6)), 20)
        assert reloaded is not None
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(30) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
