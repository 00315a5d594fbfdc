"""The `limits` and `budgets` plugins through a real gateway (the in-process store): 429s in
each API's shape with their headers, headers on success, reserve then settle with real usage
(streams too), per-backend limits skipping to the next backend, budgets and spend."""

from __future__ import annotations

import json

import openai
import pytest

from modelway.testing.gateway import run_gateway, write_config
from modelway.testing.upstreams import UpstreamServer
from tests.governance_kit import ADMIN_KEY, admin, ask, error_code, hashed

APIS = ["openai", "anthropic", "gemini"]
MODELS = {"openai": "gpt-test", "anthropic": "claude-test", "gemini": "gemini-test"}
RATE = {"openai": "requests", "anthropic": "rate_limit_error", "gemini": "RESOURCE_EXHAUSTED"}


def config(tmp_path, upstream, backup=None, limits: str = "", budget: str = ""):
    backup_backend = (f'  backup: {{provider: openai, base_url: "{backup.url}", api_key: sk-b}}'
                      if backup else "")
    failover = "failover: [[backup]]" if backup else ""
    return write_config(tmp_path, f"""
        gateway: {{admin_keys: ["{ADMIN_KEY}"]}}
        plugins:
          openai: null
          anthropic_api: null
          gemini_api: null
          admin_api: null
          stats: null
          access_log: {{path: "{tmp_path / 'access.jsonl'}"}}
          keys:
            teams:
              t: {{limits: {{tokens_per_minute: 100000}} {budget}}}
            keys:
              - {{hash: "{hashed('sk-two')}", id: two, consumer: a, team: t,
                  limits: {{requests_per_minute: 2}}}}
              - {{hash: "{hashed('sk-tok')}", id: tok, consumer: b, team: t,
                  limits: {{tokens_per_minute: 400}}}}
              - {{hash: "{hashed('sk-cash')}", id: cash, consumer: c, team: t,
                  budget: {{usd: 0.001, window: day}}}}
              - {{hash: "{hashed('sk-free')}", id: free, consumer: d}}
          limits:
            default_output_tokens: 50
            {limits}
          budgets: {{default_output_tokens: 50}}
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-gw, model: gpt-4o,
                price: {{input: 10, output: 10}}}}
        {backup_backend}
        routes:
          - {{name: chat, match: {{model: ["gpt-*", "claude-*", "gemini-*"]}}, backend: up,
              {failover}}}
    """)


@pytest.fixture
def gw(tmp_path, upstream):
    with run_gateway(config(tmp_path, upstream)) as gateway:
        yield gateway


@pytest.mark.parametrize("api", APIS)
def test_over_the_request_limit_is_a_429_in_the_clients_shape(gw, upstream, api):
    for _ in range(2):
        status, headers, _ = ask(gw.url, api, "sk-two", MODELS[api])
        assert status == 200
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    status, headers, body = ask(gw.url, api, "sk-two", MODELS[api])
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-remaining-requests"] == "0"
    kind, code = error_code(api, body)
    assert kind == RATE[api]
    if api != "anthropic":
        assert code == "rate_limit_exceeded"
    assert len(upstream.received) == 2


def test_the_sdk_raises_rate_limit_error(gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-two", max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="gpt-t", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-t", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["x-ratelimit-limit-requests"] == "2"


def test_token_reservations_settle_with_real_usage(gw):
    # Each request reserves its prompt (about 10) plus 50 output tokens, and uses 7 + 2.
    for stream in (False, True, False, True):
        status, headers, _ = ask(gw.url, "openai", "sk-tok", "gpt-test", "hi", stream=stream)
        assert status == 200
    gw.call(_settled())
    status, headers, _ = ask(gw.url, "openai", "sk-tok", "gpt-test", "hi")
    used_before_this = 4 * 9
    remaining = int(headers["x-ratelimit-remaining-tokens"])
    assert headers["x-ratelimit-limit-tokens"] == "400"
    assert 400 - used_before_this - 70 <= remaining <= 400 - used_before_this - 50


async def _settled():
    import asyncio

    for _ in range(5):
        await asyncio.sleep(0)


def test_a_request_bigger_than_the_limit_is_refused(gw, upstream):
    status, _headers, body = ask(gw.url, "openai", "sk-tok", "gpt-test", "word " * 500)
    assert status == 429 and body["error"]["type"] == "tokens"
    assert "more than the" in body["error"]["message"]
    assert upstream.received == []


def test_a_backend_at_its_limit_is_skipped_for_the_next(tmp_path, upstream):
    with UpstreamServer() as backup:
        path = config(tmp_path, upstream, backup, limits="backends: {up: {requests_per_minute: 1}}")
        with run_gateway(path) as gw:
            for _ in range(3):
                status, headers, _ = ask(gw.url, "openai", "sk-free", "gpt-test")
                assert status == 200
            assert headers["x-modelway-backend"] == "backup"
        assert (len(upstream.received), len(backup.received)) == (1, 2)


def test_route_limits_apply_to_every_key(tmp_path, upstream):
    path = config(tmp_path, upstream, limits="routes: {chat: {requests_per_minute: 1}}")
    with run_gateway(path) as gw:
        assert ask(gw.url, "openai", "sk-free", "gpt-test")[0] == 200
        status, _, body = ask(gw.url, "openai", "sk-tok", "gpt-test")
        assert status == 429 and "route chat" in body["error"]["message"]


def test_unknown_route_or_backend_names_stop_start_up(tmp_path, upstream):
    from modelway.errors import ConfigError
    from modelway.runtime import load_gateway

    path = config(tmp_path, upstream, limits="backends: {nope: {requests_per_minute: 1}}")
    with pytest.raises(ConfigError, match="no backend is named 'nope'"):
        load_gateway(str(path))


@pytest.mark.parametrize("api", APIS)
def test_over_budget_is_insufficient_quota(tmp_path, upstream, api):
    # 10 USD per million tokens: a request is reserved at ~60 tokens (0.0006) and costs 9
    # (0.00009), so the 0.001 budget lets a few through, then refuses.
    with run_gateway(config(tmp_path, upstream)) as gw:
        served, status = 0, 200
        while status == 200 and served < 20:
            served += 1
            status, headers, body = ask(gw.url, api, "sk-cash", MODELS[api])
            gw.call(_settled())
        assert 2 <= served <= 12
        assert status == 429 and int(headers["retry-after"]) >= 1
        kind, code = error_code(api, body)
        if api == "openai":
            assert (kind, code) == ("insufficient_quota", "insufficient_quota")
        elif api == "gemini":
            assert (kind, code) == ("RESOURCE_EXHAUSTED", "insufficient_quota")
        else:
            assert kind == "rate_limit_error"
        assert "budget" in (body.get("error") or {}).get("message", "")
    assert len(upstream.received) == served - 1
    assert (served - 1) * 0.00009 <= 0.001


def test_cost_goes_to_the_log_the_stats_and_spend(tmp_path, upstream):
    with run_gateway(config(tmp_path, upstream)) as gw:
        for key in ("sk-free", "sk-two"):
            assert ask(gw.url, "openai", key, "gpt-test")[0] == 200
        gw.call(_settled())
        status, _, spend = admin(gw.url, "GET", "/modelway/spend?by=key")
        _, _, by_model = admin(gw.url, "GET", "/modelway/spend?by=model")
        _, _, stats = admin(gw.url, "GET", "/modelway/stats")
    lines = [json.loads(x) for x in (tmp_path / "access.jsonl").read_text().splitlines()]
    costs = [line["cost_usd"] for line in lines if line.get("route") == "chat"]
    assert costs == [pytest.approx(0.00009), pytest.approx(0.00009)]
    assert status == 200 and set(spend["rows"]) == {"free", "two"}
    assert spend["rows"]["free"]["usd"] == pytest.approx(0.00009)
    assert spend["rows"]["free"]["requests"] == 1 and spend["rows"]["free"]["prompt"] == 7
    assert spend["total"]["usd"] == pytest.approx(0.00018)
    assert list(by_model["rows"]) == ["gpt-4o"]
    assert stats["routes"]["chat"]["cost_usd"] == pytest.approx(0.00018)


def test_check_flags_a_model_without_a_price(tmp_path, upstream):
    from modelway.cli import describe
    from modelway.runtime import load_gateway

    path = write_config(tmp_path, f"""
        plugins: {{openai: null, budgets: null}}
        backends:
          known: {{provider: openai, base_url: "{upstream.url}", api_key: k, model: gpt-4o}}
          odd: {{provider: openai, base_url: "{upstream.url}", api_key: k, model: in-house-7b}}
          priced: {{provider: openai, base_url: "{upstream.url}", api_key: k, model: in-house-8b,
                    price: {{input: 1, output: 2}}}}
        routes: [{{match: {{model: "*"}}, backend: known}}]
    """)
    text = describe(load_gateway(str(path)))
    assert "backend 'odd': no price for openai model 'in-house-7b'" in text
    assert "'known'" not in text and "'priced'" not in text


def test_budget_periods_reset_on_the_calendar():
    from datetime import UTC, datetime

    from modelway.plugins.governance.periods import period

    now = datetime(2026, 12, 2, 23, 0, tzinfo=UTC)  # a Wednesday
    assert period("day", now) == ("2026-12-02", 3600.0)
    assert period("week", now)[0] == "2026-W49" and period("week", now)[1] == 4 * 86400 + 3600
    assert period("month", now) == ("2026-12", 29 * 86400 + 3600)
    name, left = period("6h", now)
    assert name.startswith("6h-") and left == 3600.0
    assert period("day")[0] == datetime.now(UTC).strftime("%Y-%m-%d")
