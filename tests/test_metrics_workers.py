"""`/metrics` with `modelway run --workers 2`: every scrape, whichever worker answers it, shows
the requests of both workers (prometheus multiprocess mode in the supervisor's directory),
and the directory the supervisor made is gone after it stops."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelway.testing.gateway import write_config
from tests.governance_kit import ask
from tests.processes import GatewayProcess
from tests.redis_server import redis_server  # noqa: F401
from tests.test_workers import children

pytestmark = pytest.mark.slow
REQUESTS = 12


def requests_total(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "modelway_requests_total" and sample.labels.get("route") == "chat"
    )


def metrics_dir(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return found[0].split(b"=", 1)[1].decode()


def test_every_worker_answers_for_all_workers(tmp_path, upstream, redis_server, monkeypatch):  # noqa: F811
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    path = write_config(tmp_path, f"""
        gateway: {{shutdown_grace_seconds: 2}}
        state: {{store: redis, url: "{redis_server.url}"}}
        plugins: {{openai: null, metrics: null, access_log: {{enabled: false}}}}
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-gw}}
        routes:
          - {{name: chat, match: {{model: "gpt-*"}}, backend: up}}
    """)  # fmt: skip
    with GatewayProcess(path, "--workers", "2") as gateway:
        assert gateway.process is not None
        workers = children(gateway.process.pid)
        directories = {metrics_dir(pid) for pid in workers}
        assert len(directories) == 1
        for _ in range(REQUESTS):  # a fresh connection each: the kernel spreads them
            assert ask(gateway.url, "openai", None, "gpt-test")[0] == 200
        assert len(upstream.received) == REQUESTS
        directory = Path(next(iter(directories)))
        served = {pid for pid in workers if (directory / f"counter_{pid}.db").exists()}
        assert served == set(workers)  # both workers counted some (2^-11 odds otherwise)
        assert [requests_total(gateway.url) for _ in range(6)] == [REQUESTS] * 6
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(30) == 0
    assert not Path(directories.pop()).exists()
