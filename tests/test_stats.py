"""Per-route, per-variant statistics, the admin API that shows them, and `modelway stats`.

A split route sends traffic to two real upstreams on 127.0.0.1 through a real gateway (the
official openai SDK as the client); what `/modelway/stats` and the CLI report is checked
against what each upstream actually received and answered.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from modelway.errors import ConfigError
from modelway.plugins.ops.stats import Bucket, Series, StatsBoard, percentile
from modelway.runtime import load_gateway
from modelway.services import ReloadService, Services, StatsService
from modelway.statscli import render, stats_url
from modelway.testing.fake_openai import openai_completion, openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.testing.wait import wait_until

BACKEND_KEY = "sk-backend-stats"
ADMIN_KEY = "sk-gateway-admin-51c0"
PROMPT, COMPLETION = 7, 3  # what the upstreams below report per answer
PIECES = ["one", "two", "three"]


# ----------------------------------------------------------------------------- unit


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.95) == 95
    assert percentile([3.0], 0.95) == 3
    assert percentile([], 0.5) is None


def test_series_is_exact_while_small_and_bounded_when_large():
    series = Series(10, random.Random(1))
    for value in range(1, 6):
        series.add(float(value))
    assert series.summary() == {"count": 5, "mean": 3.0, "p50": 3.0, "p95": 5.0, "max": 5.0}
    for value in range(6, 10_001):
        series.add(float(value))
    assert len(series.samples) == 10
    summary = series.summary()
    assert summary["count"] == 10_000
    assert summary["mean"] == 5000.5
    assert summary["max"] == 10_000


def test_reservoir_percentiles_stay_close_on_many_values():
    series = Series(1000, random.Random(7))
    for value in random.Random(3).sample(range(100_000), 100_000):
        series.add(float(value))
    summary = series.summary()
    assert summary["p50"] == pytest.approx(50_000, rel=0.1)
    assert summary["p95"] == pytest.approx(95_000, rel=0.05)


def test_bucket_counts_errors_tokens_and_stream_ttft():
    bucket = Bucket(100, random.Random(0))
    bucket.add({"status": 200, "latency_ms": 10.0, "prompt_tokens": 5, "completion_tokens": 2})
    bucket.add({"status": 200, "stream": True, "latency_ms": 30.0, "ttft_ms": 4.0})
    bucket.add({"status": 502, "latency_ms": 20.0, "error": "upstream_unavailable"})
    bucket.add({"status": 200, "error": "upstream_unavailable", "stream": True})
    bucket.add({"status": 499, "error": "connection_closed"})
    view = bucket.snapshot()
    assert (view["requests"], view["errors"], view["streams"]) == (5, 3, 2)
    assert view["error_rate"] == 0.6
    assert (view["prompt_tokens"], view["completion_tokens"]) == (5, 2)
    assert view["latency_ms"]["count"] == 3 and view["latency_ms"]["mean"] == 20.0
    assert view["ttft_ms"]["count"] == 1 and view["ttft_ms"]["mean"] == 4.0
    assert view["statuses"] == {"200": 3, "499": 1, "502": 1}


def test_board_keeps_variants_of_a_route_apart_and_skips_unrouted_requests():
    board = StatsBoard(seed=1)
    for backend, variant in [("a", "a"), ("a", "a"), ("b", "b"), ("c", None), ("x", "a")]:
        board.record({"route": "r", "backend": backend, "variant": variant, "status": 200})
    board.record({"route": "r", "backend": None, "status": 403, "error": "blocked"})
    board.record({"route": None, "backend": None, "status": 404})
    view = board.snapshot()
    route = view["routes"]["r"]
    assert list(view["routes"]) == ["r"]
    assert (route["requests"], route["errors"]) == (6, 1)
    assert {k: v["requests"] for k, v in route["variants"].items()} == {
        "a": 2,
        "b": 1,
        "c": 1,
        "a@x": 1,
    }
    assert route["variants"]["a"]["share"] == round(2 / 6, 4)
    assert route["variants"]["a@x"]["backend"] == "x"
    board.reset()
    assert board.snapshot()["routes"] == {}


def test_render_shows_variants_side_by_side():
    board = StatsBoard(seed=1)
    for backend, latency, status in [("a", 10.0, 200), ("a", 30.0, 500), ("b", 5.0, 200)]:
        board.record(
            {
                "route": "chat",
                "backend": backend,
                "variant": backend,
                "status": status,
                "latency_ms": latency,
                "prompt_tokens": 4,
                "completion_tokens": 1,
            }
        )
    table = render(board.snapshot()).splitlines()
    assert table[2].startswith("route chat: 3 requests, 33.3% errors")
    assert table[3].split()[:2] == ["variant", "requests"]
    assert table[4].split() == ["a", "2", "66.7%", "1", "50.0%", "20.0", "30.0", "-", "8", "2"]
    assert table[5].split() == ["b", "1", "33.3%", "0", "0.0%", "5.0", "5.0", "-", "4", "1"]
    assert table[6].split()[:2] == ["(all)", "3"]
    assert render({"routes": {}}).endswith("no requests yet")


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://h:1", "http://h:1/modelway/stats"),
        ("http://h:1/", "http://h:1/modelway/stats"),
        ("http://h:1/v1", "http://h:1/modelway/stats"),
    ],
)
def test_stats_url(given, url):
    assert stats_url(given) == url


def test_statistics_survive_a_reload(tmp_path):
    text = """
        plugins: {mock: null, stats: {reservoir_size: %d}}
        backends: {m: {provider: mock}}
        routes: [{match: {model: m}, backend: m}]
        """
    services = Services()
    first = load_gateway(str(write_config(tmp_path, text % 100)), services=services)
    board = first.services.require(StatsService)
    board.record({"route": "route0", "backend": "m", "status": 200})
    second = load_gateway(str(write_config(tmp_path, text % 50, "next.yaml")), services=services)
    assert second.services.get(StatsService) is board
    assert board.settings.reservoir_size == 50
    assert board.snapshot()["routes"]["route0"]["requests"] == 1


def test_reservoir_size_is_validated(tmp_path):
    path = write_config(
        tmp_path,
        """
        plugins: {stats: {reservoir_size: 1}}
        backends: {m: {provider: mock}}
        routes: [{match: {model: m}, backend: m}]
        """,
    )
    with pytest.raises(ConfigError, match=r"plugins\.stats\.reservoir_size"):
        load_gateway(str(path))


# ----------------------------------------------------------------------------- gateway helpers


def admin_plugins(sections: dict[str, Any]) -> dict[str, Any]:
    return {**sections, "admin_api": None}


def answering(text: str) -> Callable[[Received], Reply]:
    """An OpenAI upstream answering `text`, usage PROMPT/COMPLETION; 500 when asked to fail."""

    def behave(received: Received) -> Reply:
        request = received.json
        if request["messages"][-1]["content"] == "fail":
            return Reply(status=500, body=b'{"error": {"message": "boom"}}')
        if request.get("stream"):
            return Reply(
                headers={"content-type": "text/event-stream"},
                chunks=openai_stream_chunks(request, PIECES),
            )
        return Reply(body=json.dumps(openai_completion(request, text)).encode())

    return behave


@contextmanager
def split_gateway(
    tmp_path: Path, gateway: dict[str, Any] | None = None
) -> Iterator[tuple[RunningGateway, UpstreamServer, UpstreamServer]]:
    with ExitStack() as stack:
        a = stack.enter_context(UpstreamServer(answering("answer from a")))
        b = stack.enter_context(UpstreamServer(answering("answer from b")))
        plugins = admin_plugins({"openai": None, "stats": None, "health": None})
        config: dict[str, Any] = {
            "gateway": gateway or {},
            "plugins": plugins,
            "backends": {
                "a": {"provider": "openai", "base_url": a.url, "api_key": BACKEND_KEY},
                "b": {"provider": "openai", "base_url": b.url, "api_key": BACKEND_KEY},
            },
            "routes": [
                {
                    "name": "ab",
                    "match": {"model": "ab-model"},
                    "split": {
                        "cohort": "header:x-user-id",
                        "targets": [{"backend": "a", "weight": 50}, {"backend": "b", "weight": 50}],
                    },
                },
                {"name": "solo", "match": {"model": "solo-model"}, "backend": "a"},
            ],
        }
        gw = stack.enter_context(run_gateway(config, directory=tmp_path))
        yield gw, a, b


def client(gw: RunningGateway, key: str = "sk-client") -> openai.OpenAI:
    return gw.resource(
        ("openai", key),
        lambda: openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30),
    )


def admin(
    gw: RunningGateway, method: str, path: str, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    answer = gw.http(method, path, headers=headers)
    assert answer.headers["content-type"] == "application/json"
    return answer.status, answer.json


def stats_when(
    gw: RunningGateway, ready: Callable[[dict[str, Any]], bool], key: str | None = None
) -> dict[str, Any]:
    """Poll the stats until `ready` (request_done can trail a stream's last byte)."""
    seen: list[dict[str, Any]] = []

    def check() -> dict[str, Any] | None:
        status, data = admin(gw, "GET", "/modelway/stats", key)
        assert status == 200, data
        seen[:] = [data]
        return data if ready(data) else None

    return wait_until(check, what=lambda: f"statistics to be ready, seen {seen}")


def routed(route: str, count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda data: data["routes"].get(route, {}).get("requests") == count


def received_chats(server: UpstreamServer, model: str = "ab-model") -> list[dict[str, Any]]:
    return [r.json for r in server.received if r.json["model"] == model]


def send_traffic(gw: RunningGateway) -> int:
    """A mix of answered, streamed and failing requests from 40 users; returns the count."""
    c = client(gw)
    sent = 0
    for user in range(40):
        headers = {"x-user-id": f"user-{user}"}
        content = "fail" if user % 8 == 0 else f"hello {user}"
        messages = [{"role": "user", "content": content}]
        if user % 4 == 1:
            stream = c.chat.completions.create(
                model="ab-model", messages=messages, stream=True, extra_headers=headers
            )
            assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
        elif content == "fail":
            with pytest.raises(openai.InternalServerError):
                c.chat.completions.create(
                    model="ab-model", messages=messages, extra_headers=headers
                )
        else:
            c.chat.completions.create(model="ab-model", messages=messages, extra_headers=headers)
        sent += 1
    return sent


# ----------------------------------------------------------------------------- the gateway


def test_per_variant_stats_match_what_each_upstream_received(tmp_path):
    with split_gateway(tmp_path) as (gw, a, b):
        sent = send_traffic(gw)
        client(gw).chat.completions.create(
            model="solo-model", messages=[{"role": "user", "content": "hi"}]
        )
        data = stats_when(gw, lambda d: routed("ab", sent)(d) and routed("solo", 1)(d))
    route = data["routes"]["ab"]
    variants = route["variants"]
    assert set(variants) == {"a", "b"}
    assert data["routes"]["solo"]["requests"] == 1
    assert data["routes"]["solo"]["variants"]["a"]["variant"] is None
    for name, server in (("a", a), ("b", b)):
        chats = received_chats(server)
        view = variants[name]
        failed = [c for c in chats if c["messages"][-1]["content"] == "fail"]
        streamed = [c for c in chats if c.get("stream")]
        answered = len(chats) - len(failed)
        assert (view["backend"], view["variant"]) == (name, name)
        assert view["requests"] == len(chats)
        assert view["errors"] == len(failed)
        assert view["statuses"] == {
            k: v for k, v in {"200": answered, "500": len(failed)}.items() if v
        }
        assert view["streams"] == len(streamed)
        assert view["prompt_tokens"] == PROMPT * answered
        assert view["completion_tokens"] == COMPLETION * answered
        assert view["ttft_ms"]["count"] == len(streamed)
        assert view["latency_ms"]["count"] == len(chats)
        assert view["latency_ms"]["mean"] > 0
        assert view["latency_ms"]["p95"] >= view["latency_ms"]["p50"] > 0
        if streamed:
            assert 0 < view["ttft_ms"]["mean"] <= view["latency_ms"]["max"]
    assert variants["a"]["requests"] + variants["b"]["requests"] == sent
    assert variants["a"]["requests"] > 0 and variants["b"]["requests"] > 0
    assert route["errors"] == 5  # users 0, 8, 16, 24, 32
    assert route["prompt_tokens"] == PROMPT * (sent - 5)


def test_stats_can_be_reset(tmp_path):
    with split_gateway(tmp_path) as (gw, _, _):
        client(gw).chat.completions.create(
            model="solo-model", messages=[{"role": "user", "content": "hi"}]
        )
        stats_when(gw, routed("solo", 1))
        assert admin(gw, "DELETE", "/modelway/stats") == (200, {"reset": True})
        assert admin(gw, "GET", "/modelway/stats")[1]["routes"] == {}


def test_admin_endpoints_need_a_key_when_the_gateway_has_keys(tmp_path):
    with split_gateway(tmp_path, {"api_keys": [ADMIN_KEY]}) as (gw, _, _):
        for method, path in [
            ("GET", "/modelway/stats"),
            ("GET", "/modelway/health"),
            ("POST", "/modelway/reload"),
            ("DELETE", "/modelway/stats"),
        ]:
            for key in (None, "sk-wrong"):
                status, body = admin(gw, method, path, key)
                assert status == 401, (method, path, body)
                assert body["error"]["code"] == "invalid_api_key"
        assert admin(gw, "GET", "/modelway/stats", ADMIN_KEY)[0] == 200
        assert admin(gw, "GET", "/modelway/health", ADMIN_KEY)[0] == 200


def test_admin_api_errors_are_in_openai_shape(tmp_path):
    with split_gateway(tmp_path) as (gw, _, _):
        status, body = admin(gw, "POST", "/modelway/stats")
        assert status == 405 and body["error"]["code"] == "method_not_allowed"
        gw.gateway.services.remove(ReloadService)  # a gateway that cannot reload
        status, body = admin(gw, "POST", "/modelway/reload")
        assert status == 503 and body["error"]["code"] == "reload_unavailable"


def test_admin_views_say_when_their_plugin_is_not_enabled(tmp_path):
    config = {
        "plugins": admin_plugins({"mock": None}),
        "backends": {"m": {"provider": "mock"}},
        "routes": [{"match": {"model": "m"}, "backend": "m"}],
    }
    with run_gateway(config, directory=tmp_path) as gw:
        for view in ("stats", "health"):
            status, body = admin(gw, "GET", f"/modelway/{view}")
            assert status == 404
            assert body["error"]["code"] == "plugin_not_enabled"
            assert view in body["error"]["message"]


def test_reload_calls_a_plain_callable_and_reports_its_failures(tmp_path):
    calls: list[str] = []

    async def reload() -> None:
        calls.append("reload")

    async def broken() -> None:
        raise ConfigError("gateway.yaml: routes.0.backend: unknown backend 'x'")

    async def crashing() -> None:
        raise RuntimeError("disk on fire")

    with split_gateway(tmp_path) as (gw, _, _):
        services = gw.gateway.services
        services.provide(ReloadService, ReloadService(reload))
        assert admin(gw, "POST", "/modelway/reload") == (200, {"reloaded": True})
        assert calls == ["reload"]
        services.provide(ReloadService, ReloadService(broken))
        status, body = admin(gw, "POST", "/modelway/reload")
        assert status == 409 and body["error"]["code"] == "config_invalid"
        assert "unknown backend 'x'" in body["error"]["message"]
        services.provide(ReloadService, ReloadService(crashing))
        status, body = admin(gw, "POST", "/modelway/reload")
        assert status == 503 and body["error"]["code"] == "reload_failed"
        assert "disk on fire" not in body["error"]["message"]


def ab_variant(gw: RunningGateway, user: str) -> str:
    raw = client(gw).chat.completions.with_raw_response.create(
        model="ab-model",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-user-id": user},
    )
    return raw.headers["x-modelway-variant"]


def test_reload_endpoint_switches_the_configuration_and_keeps_the_stats(tmp_path):
    with split_gateway(tmp_path) as (gw, a, b):
        users = [f"user-{n}" for n in range(12)]
        before = {user: ab_variant(gw, user) for user in users}
        assert set(before.values()) == {"a", "b"}
        path = tmp_path / "gateway.yaml"
        config = yaml.safe_load(path.read_text())
        config["routes"][0]["split"]["targets"][0]["weight"] = 0  # everyone to b
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        assert admin(gw, "POST", "/modelway/reload") == (200, {"reloaded": True})
        assert {ab_variant(gw, user) for user in users} == {"b"}
        sent = len(received_chats(a)) + len(received_chats(b))
        data = stats_when(gw, routed("ab", sent))
    variants = data["routes"]["ab"]["variants"]
    assert variants["a"]["requests"] == len(received_chats(a)) > 0
    assert variants["b"]["requests"] == len(received_chats(b)) > len(users)


def test_reload_endpoint_refuses_an_invalid_configuration(tmp_path):
    with split_gateway(tmp_path) as (gw, _, _):
        path = tmp_path / "gateway.yaml"
        path.write_text(path.read_text().replace("backend: b", "backend: nowhere"))
        status, body = admin(gw, "POST", "/modelway/reload")
        assert status == 409 and body["error"]["code"] == "config_invalid"
        assert "nowhere" in body["error"]["message"]
        assert ab_variant(gw, "user-1") in {"a", "b"}  # still serving the old configuration


# ----------------------------------------------------------------------------- the CLI


def stats_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "modelway.statscli", *args]
    environment = {k: v for k, v in os.environ.items() if k != "MODELWAY_API_KEY"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**environment, **(env or {})}
    )


def table_rows(output: str, route: str) -> dict[str, list[str]]:
    """The rows of one route's table, by their first cell."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"route {route}:"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells
    return rows


def test_cli_prints_the_variants_side_by_side(tmp_path):
    with split_gateway(tmp_path) as (gw, a, b):
        sent = send_traffic(gw)
        data = stats_when(gw, routed("ab", sent))
        result = stats_cli("--url", gw.url)
        as_json = stats_cli("--url", gw.base_url, "--json")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout, "ab")
    assert set(rows) == {"a", "b", "(all)"}
    for name, server in (("a", a), ("b", b)):
        chats = received_chats(server)
        failed = sum(c["messages"][-1]["content"] == "fail" for c in chats)
        row = rows[name]
        assert int(row[1]) == len(chats)
        assert int(row[3]) == failed
        assert row[4] == f"{failed / len(chats) * 100:.1f}%"
        assert int(row[8]) == PROMPT * (len(chats) - failed)
        assert int(row[9]) == COMPLETION * (len(chats) - failed)
    assert int(rows["(all)"][1]) == sent and int(rows["(all)"][3]) == 5
    assert as_json.returncode == 0, as_json.stderr
    parsed = json.loads(as_json.stdout)
    assert parsed["routes"]["ab"]["variants"] == data["routes"]["ab"]["variants"]


def test_cli_uses_the_api_key(tmp_path):
    with split_gateway(tmp_path, {"api_keys": [ADMIN_KEY]}) as (gw, _, _):
        refused = stats_cli("--url", gw.url)
        by_flag = stats_cli("--url", gw.url, "--api-key", ADMIN_KEY)
        by_env = stats_cli("--url", gw.url, env={"MODELWAY_API_KEY": ADMIN_KEY})
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr and "invalid API key" in refused.stderr
    assert by_flag.returncode == 0, by_flag.stderr
    assert by_env.returncode == 0, by_env.stderr
    assert "no requests yet" in by_flag.stdout


def test_cli_says_when_the_gateway_cannot_be_reached(closed_port):
    result = stats_cli("--url", f"http://127.0.0.1:{closed_port}", "--timeout", "5")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr
    assert result.stdout == ""


def test_modelway_stats_command(tmp_path):
    modelway = str(Path(sys.executable).parent / "modelway")
    with split_gateway(tmp_path) as (gw, _, _):
        client(gw).chat.completions.create(
            model="solo-model", messages=[{"role": "user", "content": "hi"}]
        )
        stats_when(gw, routed("solo", 1))
        result = subprocess.run(
            [modelway, "stats", "--url", gw.url], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout, "solo")["a"][1] == "1"


def test_cost_is_counted_without_the_budgets_plugin(tmp_path):
    with UpstreamServer(answering("priced answer")) as upstream:
        config = {
            "plugins": admin_plugins({"openai": None, "stats": None}),
            "backends": {"p": {"provider": "openai", "base_url": upstream.url,
                               "api_key": BACKEND_KEY,
                               "price": {"input": 1000000, "output": 2000000}}},
            "routes": [{"name": "priced", "match": {"model": "priced-model"}, "backend": "p"}],
        }  # fmt: skip
        with run_gateway(config, directory=tmp_path) as gw:
            answer = client(gw).chat.completions.create(
                model="priced-model", messages=[{"role": "user", "content": "hi"}]
            )
            assert answer.usage is not None
            expected = answer.usage.prompt_tokens * 1.0 + answer.usage.completion_tokens * 2.0
            data = stats_when(gw, routed("priced", 1))
            assert data["routes"]["priced"]["cost_usd"] == pytest.approx(expected)
            assert expected > 0
