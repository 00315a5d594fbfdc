"""The `metrics` plugin through a real gateway: real upstreams, the official openai SDK, and a
scrape of `GET /metrics` parsed with prometheus_client's own parser.

Traffic: a chat whose primary answers 503 (failover to the backup, the primary ejected), a
stream, a request the webhook guard rejects, a request over a route's rate limit, a model no
configuration names; then the values: counts, token sums, cost, in-flight gauges at zero.
Also: `gateway.metrics_port`, the bounded labels, and the numbers of two `--workers` summed.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelway.plugins.ops.metrics.families import EXPORTED
from modelway.plugins.ops.metrics.labels import OTHER, Capped, status_class
from modelway.testing.fake_openai import openai_behavior, openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.testing.wait import wait_until

MESSAGES = [{"role": "user", "content": "alpha beta gamma"}]


def failing(received: Received) -> Reply:
    body = json.dumps({"error": {"message": "overloaded", "type": "server_error"}})
    return Reply(status=503, body=body.encode(), headers={"content-type": "application/json"})


def rejecting(received: Received) -> Reply:
    return Reply.json({"action": "reject", "message": "not on this route"})


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scraped: dict, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and wanted <= ls)


def scrape(gw: RunningGateway) -> dict:
    answer = gw.http("GET", "/metrics")
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.body.decode())


def config(primary: str, backup: str, guard: str, **gateway: object) -> dict:
    return {
        "gateway": gateway,
        "plugins": {
            "openai": None, "webhook_guard": None,
            "health": {"failures_to_eject": 1, "cooldown_seconds": 600,
                       "max_cooldown_seconds": 600},
            "limits": {"routes": {"limited": {"requests_per_minute": 1}}},
            "metrics": None,  # registered after health: its ejections are counted all the same
        },
        "backends": {
            "primary": {"provider": "openai", "base_url": primary, "api_key": "sk-p"},
            "backup": {"provider": "openai", "base_url": backup, "api_key": "sk-b"},
        },
        "routes": [
            {"name": "guarded", "match": {"model": "guarded"}, "backend": "backup",
             "policies": {"webhook_guard": {"url": guard}}},
            {"name": "limited", "match": {"model": "limited"}, "backend": "backup"},
            {"name": "chat", "match": {"model": "gpt-*"}, "backend": "primary",
             "failover": {"groups": [["backup"]]}},
        ],
    }  # fmt: skip


@contextmanager
def traffic_gateway(**gateway: object) -> Iterator[tuple[RunningGateway, dict]]:
    with (
        UpstreamServer(failing) as primary,
        UpstreamServer(openai_behavior) as backup,
        UpstreamServer(rejecting) as guard,
        run_gateway(config(primary.url, backup.url, guard.url, **gateway)) as gw,
    ):
        sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
        usage = {"prompt": 0, "completion": 0}
        for _ in range(2):
            answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert answer.usage is not None
            usage["prompt"] += answer.usage.prompt_tokens
            usage["completion"] += answer.usage.completion_tokens
        chunks = sdk.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "echo: alpha beta gamma"
        with pytest.raises(openai.BadRequestError):
            sdk.chat.completions.create(model="guarded", messages=MESSAGES)
        sdk.chat.completions.create(model="limited", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(model="limited", messages=MESSAGES)
        sdk.chat.completions.create(model="gpt-made-up-by-a-client", messages=MESSAGES)
        assert len(primary.received) == 1  # ejected after its one failure
        yield gw, usage


@pytest.fixture(scope="module")
def scraped() -> tuple[dict, dict]:
    with traffic_gateway() as (gw, usage):
        return scrape(gw), usage


def test_requests_by_route_backend_and_status(scraped):
    found, _ = scraped
    name = "modelway_requests_total"
    assert value(found, name, route="chat", backend="backup", status="200", api="openai") == 4
    assert value(found, name, route="guarded", status="400") == 1
    assert value(found, name, route="limited", status="200") == 1
    assert value(found, name, route="limited", status="429") == 1
    assert value(found, name, backend="primary") == 0


def test_attempts_failovers_and_ejections(scraped):
    found, _ = scraped
    assert value(found, "modelway_upstream_attempts_total", backend="primary", outcome="5xx") == 1
    assert value(found, "modelway_upstream_attempts_total", backend="backup", outcome="ok") == 5
    assert value(found, "modelway_failovers_total", route="chat", backend="primary",
                 trigger="5xx") == 1  # fmt: skip
    assert value(found, "modelway_failovers_total") == 1
    assert value(found, "modelway_health_ejections_total", backend="primary") == 1


def test_guard_and_rate_limit_rejections(scraped):
    found, _ = scraped
    assert value(found, "modelway_guard_decisions_total", guard="webhook_guard",
                 stage="request", action="reject") == 1  # fmt: skip
    assert value(found, "modelway_rejections_total", route="limited", reason="rate_limit") == 1
    assert value(found, "modelway_rejections_total", reason="budget") == 0


def test_gen_ai_token_usage_and_durations(scraped):
    found, usage = scraped
    labels = {"gen_ai_request_model": "gpt-4o-mini", "gen_ai_provider_name": "openai",
              "gen_ai_operation_name": "chat", "gen_ai_response_model": "gpt-4o-mini"}  # fmt: skip
    tokens = "gen_ai_client_token_usage"
    assert value(found, tokens + "_count", gen_ai_token_type="input", **labels) == 3
    whole_prompt = value(found, tokens + "_sum", gen_ai_token_type="input", **labels)
    assert whole_prompt == usage["prompt"] * 3 / 2  # the stream's usage is the same
    duration = "gen_ai_server_request_duration_count"
    assert value(found, duration, error_type="", **labels) == 3
    assert value(found, "gen_ai_server_time_to_first_token_count", **labels) == 1
    assert value(found, "gen_ai_server_time_per_output_token_count", **labels) == 1
    assert value(found, "gen_ai_server_request_duration_count", error_type="content_rejected") == 1


def test_cost_overhead_and_gauges(scraped):
    found, usage = scraped
    cost = value(
        found, "modelway_cost_usd_total", route="chat", gen_ai_response_model="gpt-4o-mini"
    )
    expected = 3 / 2 * (usage["prompt"] * 0.15 + usage["completion"] * 0.60) / 1e6
    assert cost == pytest.approx(expected, rel=1e-6)
    assert value(found, "modelway_gateway_overhead_seconds_count", api="openai") == 7
    assert value(found, "modelway_requests_in_flight") == 0
    assert value(found, "modelway_streams_in_flight") == 0


def test_a_model_no_configuration_names_is_one_fixed_label(scraped):
    found, _ = scraped
    models = {dict(ls).get("gen_ai_request_model") for (n, ls) in found
              if n == "gen_ai_client_token_usage_count"}  # fmt: skip
    assert models == {"gpt-4o-mini", OTHER, "limited"}
    assert not any("made-up" in str(labels) for _, labels in found)


def test_open_ended_labels_are_capped():
    capped = Capped(limit=2)
    assert [capped(v) for v in ("a", "b", "c", "a", None)] == ["a", "b", OTHER, "a", ""]
    assert [status_class(e) for e in ("http_503", "http_429", "http_404", None, "slow")] == [
        "5xx", "429", "4xx", "ok", "slow"]  # fmt: skip


def test_metrics_port_serves_the_same_numbers_without_a_key():
    with (
        UpstreamServer(openai_behavior) as backup,
        run_gateway({
            "gateway": {"metrics_port": 0, "api_keys": ["sk-client"]},
            "plugins": {"openai": None, "metrics": None},
            "backends": {"b": {"provider": "openai", "base_url": backup.url, "api_key": "k"}},
            "routes": [{"name": "r", "match": {"model": "*"}, "backend": "b"}],
        }) as gw,
    ):  # fmt: skip
        assert gw.http("GET", "/metrics").status == 401  # the gateway's port takes a key
        sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0))
        sdk.chat.completions.create(model="m", messages=MESSAGES)
        plugin = gw.gateway.pm.get_plugin("metrics")
        server = plugin._server
        assert server is not None and server.port != 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            found = samples(answer.read().decode())
        assert value(found, "modelway_requests_total", route="r", status="200") == 1


GRAFANA = Path(__file__).parent.parent / "deploy" / "grafana" / "modelway.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def grafana_queries() -> list[str]:
    dashboard = json.loads(GRAFANA.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


def test_every_grafana_query_names_a_metric_the_gateway_exports():
    with traffic_gateway() as (gw, _):
        text = gw.http("GET", "/metrics").body.decode()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    queries = grafana_queries()
    assert len(queries) >= 16
    named = set()
    for query in queries:
        bare = re.sub(r"\b(?:by|without)\s*\([^)]*\)|\{[^}]*\}", "", query)  # label names
        found = re.findall(r"\b((?:gen_ai|modelway)_[a-z_]+)\b", bare)
        assert found, f"no gateway metric in {query}"
        named.update(found)
    for name in named:
        base, suffix = name, ""
        for candidate in SUFFIXES:
            if name.endswith(candidate) and name[: -len(candidate)] in families:
                base, suffix = name[: -len(candidate)], candidate
        assert base in families, f"{name}: the gateway exports no such metric"
        kind = families[base]
        allowed = {"histogram": {"_bucket", "_count", "_sum"}, "counter": {"_total"},
                   "gauge": {""}}[kind]  # fmt: skip
        assert suffix in allowed, f"{name}: a {kind} has no {suffix or 'bare'} series"
    bases = {re.sub(r"_(bucket|count|sum)$", "", n) for n in named}
    assert set(EXPORTED) <= bases  # and every exported metric has a panel


def test_a_stream_in_flight_is_counted_until_it_ends():
    with UpstreamServer() as upstream:
        gate = upstream.gate(timeout=30)

        def behave(received: Received) -> Reply:
            chunks = openai_stream_chunks(received.json, ["one", "two"])

            def produce() -> Iterator[bytes]:
                yield chunks[0]
                if gate.wait():
                    yield from chunks[1:]

            return Reply.sse(produce())

        upstream.behavior = behave
        config = {
            "plugins": {"openai": None, "metrics": None},
            "backends": {"b": {"provider": "openai", "base_url": upstream.url, "api_key": "k"}},
            "routes": [{"name": "r", "match": {"model": "*"}, "backend": "b"}],
        }
        with run_gateway(config) as gw:
            sdk = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk", max_retries=0))
            stream = sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            first = next(iter(stream))
            assert first.choices[0].delta.content in ("", None, "one")
            during = scrape(gw)
            gate.open(all=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert "two" in text
            after = wait_until(lambda: (s := scrape(gw)) and
                               value(s, "modelway_requests_in_flight") == 0 and s)  # fmt: skip
    assert value(during, "modelway_streams_in_flight") == 1
    assert value(during, "modelway_requests_in_flight") == 1
    assert value(after, "modelway_streams_in_flight") == 0
    assert value(after, "modelway_requests_total", route="r", status="200") == 1
