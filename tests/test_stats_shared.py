"""A/B statistics summed over processes (`statshare`): the deltas and their histogram on one
store, then two real gateway processes on a real redis-server.

Through the processes, a split route sends traffic from the official openai SDK to two real
upstreams on 127.0.0.1 through both instances; the admin endpoint (`/modelway/stats`), the
dashboard's data and `modelway stats` of either instance show the sums, checked against what
each upstream received. With Redis stopped, the endpoint answers at once with the instance's
own numbers, and what was counted meanwhile reaches the store when Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import openai
import pytest

from modelway.plugins.ops.statshare import KEY, StatsShare, bounds, bucket_of, view
from modelway.state import MemoryStore, StateUnavailable
from modelway.statestore import GuardedStore
from modelway.testing.gateway import write_config
from modelway.testing.upstreams import UpstreamServer
from tests.governance_kit import ADMIN_KEY, admin
from tests.processes import GatewayProcess, wait_for
from tests.redis_server import redis_server  # noqa: F401
from tests.test_stats import COMPLETION, PROMPT, answering, received_chats, stats_cli, table_rows

WALL = 1.7e9


# ----------------------------------------------------------------------------- on one store


class FlakyStore(MemoryStore):
    """A memory store whose hash merges the test can make fail."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def merge_fields(self, key, sums, maxima=None, minima=None):  # type: ignore[no-untyped-def]
        if self.down:
            raise StateUnavailable("down for the test")
        await super().merge_fields(key, sums, maxima, minima)


def record(backend: str | None, latency: float, **extra: Any) -> dict[str, Any]:
    return {"route": "ab", "backend": backend, "variant": backend, "status": 200,
            "latency_ms": latency, "prompt_tokens": 7, "completion_tokens": 3,
            "cost_usd": 0.001, **extra}  # fmt: skip


def shares() -> tuple[StatsShare, StatsShare, FlakyStore]:
    inner = FlakyStore()
    store = GuardedStore(inner, 0.0, shared=True)
    return StatsShare(store, wall=lambda: WALL), StatsShare(store, wall=lambda: WALL), inner


def collect(share: StatsShare, *before: Callable[[], Any]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        for call in before:
            await call()
        return await share.collect()

    return asyncio.run(go())


def test_two_processes_deltas_are_summed_per_variant():
    one, two, _ = shares()
    for _ in range(3):
        one.record(record("a", 10))
    two.record(record("b", 20, status=500, error="upstream_error"))
    two.record(record("a", 30, stream=True, ttft_ms=5))
    two.record({"route": "ab", "status": 403})  # rejected before any backend
    data = collect(one, two.flush)
    route = data["routes"]["ab"]
    assert data["scope"] == "shared"
    assert route["requests"] == 6 and route["errors"] == 2
    a, b = route["variants"]["a"], route["variants"]["b"]
    assert (a["requests"], a["streams"], a["share"]) == (4, 1, round(4 / 6, 4))
    assert (b["errors"], b["statuses"], b["error_rate"]) == (1, {"500": 1}, 1.0)
    assert a["prompt_tokens"] == 28 and a["completion_tokens"] == 12
    assert a["cost_usd"] == 0.004
    assert a["latency_ms"]["count"] == 4 and a["latency_ms"]["mean"] == 15.0
    assert a["latency_ms"]["max"] == 30 and a["ttft_ms"]["count"] == 1


def test_histogram_percentiles_stay_close_and_never_pass_the_maximum():
    rng = random.Random(7)
    values = [rng.uniform(1, 2000) for _ in range(5000)]
    one, _, _ = shares()
    for value in values:
        one.record(record("a", value))
    latency = collect(one)["routes"]["ab"]["variants"]["a"]["latency_ms"]
    ordered = sorted(values)
    for name, fraction in (("p50", 0.5), ("p95", 0.95)):
        exact = ordered[int(fraction * len(ordered)) - 1]
        assert abs(latency[name] - exact) / exact < 0.09, (name, latency[name], exact)
    assert latency["p95"] <= latency["max"] == round(max(values), 2)


def test_bucket_bounds_hold_their_values():
    for value in (0.2, 1.0, 1.01, 3.3, 250.0, 99_999.0):
        low, high = bounds(bucket_of(value))
        assert low < value <= high or (value <= 1 and high == 1)


def test_a_delta_that_could_not_be_sent_goes_with_the_next_one():
    one, _, inner = shares()
    inner.down = True
    one.record(record("a", 10))
    with pytest.raises(StateUnavailable):
        asyncio.run(one.flush())
    inner.down = False
    one.record(record("a", 10))
    assert collect(one)["routes"]["ab"]["variants"]["a"]["requests"] == 2


def test_clear_starts_afresh_for_everyone():
    one, two, _ = shares()
    one.record(record("a", 10))
    two.record(record("b", 10))
    assert collect(one, two.flush, one.clear)["routes"] == {}
    assert asyncio.run(one.store.fields(KEY)) == {}


def test_an_empty_store_is_no_routes():
    assert view({}, WALL)["routes"] == {}


# ----------------------------------------------------------------------------- two processes


def config(tmp_path, a: UpstreamServer, b: UpstreamServer, redis_url: str):
    return write_config(tmp_path, f"""
        gateway: {{admin_keys: ["{ADMIN_KEY}"], shutdown_grace_seconds: 2}}
        state: {{store: redis, url: "{redis_url}", retry_seconds: 0.2, timeout_seconds: 0.5}}
        plugins:
          openai: null
          admin_api: null
          dashboard: null
          access_log: {{enabled: false}}
          stats: {{flush_seconds: 0.2}}
        backends:
          a: {{provider: openai, base_url: "{a.url}", api_key: sk-gw}}
          b: {{provider: openai, base_url: "{b.url}", api_key: sk-gw}}
        routes:
          - name: ab
            match: {{model: ab-model}}
            split: {{cohort: "header:x-user-id",
                     targets: [{{backend: a, weight: 50}}, {{backend: b, weight: 50}}]}}
    """)  # fmt: skip


@pytest.fixture
def pair(tmp_path, redis_server):  # noqa: F811
    with (
        UpstreamServer(answering("answer from a")) as a,
        UpstreamServer(answering("answer from b")) as b,
    ):
        path = config(tmp_path, a, b, redis_server.url)
        with GatewayProcess(path) as one, GatewayProcess(path) as two:
            yield one, two, a, b


def traffic(gateway: GatewayProcess, users: range) -> int:
    """Answered, streamed and failing requests, one per user; returns how many were sent."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-client", max_retries=0,
                       timeout=30) as client:  # fmt: skip
        for user in users:
            headers = {"x-user-id": f"user-{user}"}
            content = "fail" if user % 8 == 0 else f"hello {user}"
            messages = [{"role": "user", "content": content}]
            if content == "fail":
                with pytest.raises(openai.InternalServerError):
                    client.chat.completions.create(
                        model="ab-model", messages=messages, extra_headers=headers
                    )
            elif user % 4 == 1:
                stream = client.chat.completions.create(
                    model="ab-model", messages=messages, stream=True, extra_headers=headers
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                client.chat.completions.create(
                    model="ab-model", messages=messages, extra_headers=headers
                )
    return len(users)


def stats(gateway: GatewayProcess, path: str = "/modelway/stats") -> dict[str, Any]:
    status, _, data = admin(gateway.url, "GET", path)
    assert status == 200, data
    return data if path == "/modelway/stats" else data["stats"]


def stats_reach(gateway: GatewayProcess, requests: int, path: str = "/modelway/stats") -> dict:
    seen: list[dict[str, Any]] = []

    def done() -> bool:
        seen[:] = [stats(gateway, path)]
        return seen[0]["routes"].get("ab", {}).get("requests") == requests

    assert wait_for(done, 20, 0.1) is not None, seen
    return seen[0]


def check_variants(data: dict[str, Any], servers: dict[str, UpstreamServer]) -> None:
    variants = data["routes"]["ab"]["variants"]
    assert set(variants) == set(servers)
    for name, server in servers.items():
        chats = received_chats(server)
        failed = [c for c in chats if c["messages"][-1]["content"] == "fail"]
        streamed = [c for c in chats if c.get("stream")]
        answered = len(chats) - len(failed)
        found = variants[name]
        assert found["requests"] == len(chats) > 0
        assert found["errors"] == len(failed)
        assert found["streams"] == len(streamed)
        assert found["prompt_tokens"] == PROMPT * answered
        assert found["completion_tokens"] == COMPLETION * answered
        assert found["latency_ms"]["count"] == len(chats)
        assert found["latency_ms"]["p95"] >= found["latency_ms"]["p50"] > 0
        assert found["ttft_ms"]["count"] == len(streamed)


@pytest.mark.slow
def test_both_instances_show_the_sum_of_their_traffic_per_variant(pair):
    one, two, a, b = pair
    sent = traffic(one, range(0, 24)) + traffic(two, range(24, 40))
    data = stats_reach(one, sent)
    assert data["scope"] == "shared"
    check_variants(data, {"a": a, "b": b})
    assert data["routes"]["ab"]["errors"] == 5  # users 0, 8, 16, 24, 32
    other = stats_reach(two, sent)
    assert other["routes"] == data["routes"]
    assert stats_reach(two, sent, "/modelway/dashboard/data")["routes"] == data["routes"]
    shown = stats_cli("--url", two.url, "--api-key", ADMIN_KEY)
    assert shown.returncode == 0, shown.stderr
    assert "every process on the shared state store" in shown.stdout
    rows = table_rows(shown.stdout, "ab")
    assert int(rows["(all)"][1]) == sent
    assert int(rows["a"][1]) == len(received_chats(a))
    as_json = json.loads(stats_cli("--url", one.url, "--api-key", ADMIN_KEY, "--json").stdout)
    assert as_json["routes"]["ab"]["requests"] == sent


@pytest.mark.slow
def test_redis_stopped_stats_answer_with_this_instance_and_catch_up_after(pair, redis_server):  # noqa: F811
    one, two, _, _ = pair
    before = traffic(one, range(1, 5)) + traffic(two, range(5, 9))
    stats_reach(one, before)
    redis_server.stop()
    during = traffic(one, range(9, 17))  # each request has a 30 s timeout: a hung one fails
    local = stats(one)
    assert local["scope"] == "process" and "store_error" in local
    assert local["routes"]["ab"]["requests"] == 4 + during  # this instance's own, since start
    assert admin(one.url, "DELETE", "/modelway/stats")[0] == 503
    redis_server.start()  # empty: the test's Redis keeps nothing on disk
    data = stats_reach(two, during)
    assert data["scope"] == "shared"
    assert data["routes"]["ab"]["errors"] == 1  # user 16
    assert sum(v["requests"] for v in data["routes"]["ab"]["variants"].values()) == during


@pytest.mark.slow
def test_every_worker_answers_with_the_sum_over_the_workers(tmp_path, redis_server):  # noqa: F811
    with (
        UpstreamServer(answering("answer from a")) as a,
        UpstreamServer(answering("answer from b")) as b,
    ):
        path = config(tmp_path, a, b, redis_server.url)
        with GatewayProcess(path, "--workers", "2") as gateway:
            sent = traffic(gateway, range(1, 13))
            stats_reach(gateway, sent)
            # A connection each: the kernel spreads the reads over both workers (whichever
            # served the traffic), 2^-7 odds that all go to one.
            views = [stats(gateway)["routes"]["ab"]["requests"] for _ in range(8)]
    assert views == [sent] * 8
