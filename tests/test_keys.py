"""The `keys` plugin through a real gateway: 401s and 403s in each API's shape, YAML keys held
as hashes, keys created, rotated and revoked through the admin API, the access log."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from modelway.testing.gateway import run_gateway, write_config
from tests.governance_kit import ADMIN_KEY, admin, ask, error_code, hashed

APIS = ["openai", "anthropic", "gemini"]
MODELS = {"openai": "gpt-test", "anthropic": "claude-test", "gemini": "gemini-test"}
UNAUTHORIZED = {"openai": "invalid_request_error", "anthropic": "authentication_error",
                "gemini": "UNAUTHENTICATED"}
FORBIDDEN = {"openai": "invalid_request_error", "anthropic": "permission_error",
             "gemini": "PERMISSION_DENIED"}


def config(tmp_path, upstream, extra: str = ""):
    return write_config(tmp_path, f"""
        gateway:
          admin_keys: ["{ADMIN_KEY}"]
          api_keys: ["sk-plain-gateway-key"]
        plugins:
          openai: null
          anthropic_api: null
          gemini_api: null
          admin_api: null
          access_log: {{path: "{tmp_path / 'access.jsonl'}"}}
          keys:
            teams:
              search: {{models: ["gpt-*", "claude-*", "gemini-*"], metadata: {{cost_center: "42"}}}}
              small: {{models: ["gpt-*"]}}
            keys:
              - {{hash: "{hashed('sk-alice')}", consumer: alice, team: search,
                  metadata: {{owner: alice}}}}
              - {{hash: "{hashed('sk-old')}", consumer: old, expires: "2020-01-01T00:00:00Z"}}
              - {{hash: "{hashed('sk-bob')}", id: bob-key, consumer: bob, kind: service,
                  team: small, models: ["gpt-test"]}}
              - {{hash: "{hashed('sk-routes')}", consumer: carol, routes: ["other"]}}
        {extra}
        backends:
          up: {{provider: openai, base_url: "{upstream.url}", api_key: sk-gw}}
        routes:
          - {{name: chat, match: {{model: ["gpt-*", "claude-*", "gemini-*"]}}, backend: up}}
    """)


@pytest.fixture
def gw(tmp_path, upstream):
    with run_gateway(config(tmp_path, upstream)) as gateway:
        yield gateway


def log_lines(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "access.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(("key", "code"), [
    (None, "missing_api_key"), ("sk-nobody", "invalid_api_key"), ("sk-old", "expired_api_key"),
])
def test_every_401_in_the_clients_shape(gw, upstream, api, key, code):
    status, _, body = ask(gw.url, api, key, MODELS[api])
    assert status == 401
    kind, own = error_code(api, body)
    assert kind == UNAUTHORIZED[api]
    if api != "anthropic":
        assert own == code
    assert upstream.received == []


@pytest.mark.parametrize("api", APIS)
def test_a_model_the_key_may_not_use_is_a_403(gw, upstream, api):
    status, _, body = ask(gw.url, api, "sk-bob", MODELS[api] if api != "openai" else "gpt-big")
    assert status == 403
    kind, own = error_code(api, body)
    assert kind == FORBIDDEN[api]
    if api != "anthropic":
        assert own == "model_not_allowed"
    assert upstream.received == []


def test_a_route_the_key_may_not_use_is_a_403(gw):
    status, _, body = ask(gw.url, "openai", "sk-routes", "gpt-test")
    assert (status, body["error"]["code"]) == (403, "route_not_allowed")


def test_the_sdks_see_401_and_403(gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-nobody", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "x"}])
    bob = openai.OpenAI(base_url=gw.base_url, api_key="sk-bob", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        bob.chat.completions.create(model="gpt-other", messages=[{"role": "user", "content": "x"}])
    claude = anthropic.Anthropic(base_url=gw.url, api_key="sk-bob", max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        claude.messages.create(model="claude-test", max_tokens=10,
                               messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("api", APIS)
def test_a_valid_key_in_each_apis_header_is_served(gw, api):
    status, _, _ = ask(gw.url, api, "sk-alice", MODELS[api])
    assert status == 200


def test_the_access_log_names_key_consumer_and_team(tmp_path, gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-alice", max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    ask(gw.url, "openai", "sk-plain-gateway-key", "gpt-test")
    lines = [line for line in log_lines(tmp_path) if line.get("route") == "chat"]
    assert (lines[0]["key_id"], lines[0]["consumer"], lines[0]["team"]) == (
        "key_" + hashed("sk-alice")[7:19], "alice", "search")
    assert lines[1]["key_id"] == "gateway" and lines[1]["team"] is None
    assert "sk-alice" not in (tmp_path / "access.jsonl").read_text()


def test_created_keys_work_at_once_rotate_and_revoke(gw):
    status, _, created = admin(gw.url, "POST", "/modelway/keys",
                               {"consumer": "dave", "team": "small", "kind": "service",
                                "metadata": {"app": "reports"}})
    assert status == 201 and created["key"].startswith("mw-")
    key, key_id = created["key"], created["id"]
    assert ask(gw.url, "openai", key, "gpt-test")[0] == 200
    assert ask(gw.url, "anthropic", key, "claude-test")[0] == 403  # the team's models
    _, _, listed = admin(gw.url, "GET", "/modelway/keys")
    assert key_id in [k["id"] for k in listed["keys"]]
    assert key not in json.dumps(listed) and "hash" not in listed["keys"][0]
    status, _, shown = admin(gw.url, "GET", f"/modelway/keys/{key_id}")
    assert (status, shown["consumer"], shown["state"]) == (200, "dave", "active")
    status, _, rotated = admin(gw.url, "POST", f"/modelway/keys/{key_id}/rotate", {})
    assert status == 201 and rotated["key"] != key and rotated["team"] == "small"
    gw.call(_expire_cache(gw))
    assert ask(gw.url, "openai", key, "gpt-test")[0] == 401
    assert ask(gw.url, "openai", rotated["key"], "gpt-test")[0] == 200
    status, _, revoked = admin(gw.url, "DELETE", f"/modelway/keys/{rotated['id']}")
    assert (status, revoked["state"]) == (200, "revoked")
    status, _, body = ask(gw.url, "openai", rotated["key"], "gpt-test")
    assert (status, body["error"]["code"]) == (401, "revoked_api_key")


async def _expire_cache(gw):
    from modelway.plugins.governance.registry import KeyRegistry

    gw.gateway.services.require(KeyRegistry)._cache.clear()


def test_admin_key_errors(gw):
    assert admin(gw.url, "GET", "/modelway/keys/nope")[0] == 404
    status, _, body = admin(gw.url, "DELETE", "/modelway/keys/bob-key")
    assert (status, body["error"]["code"]) == (409, "key_in_config")
    status, _, body = admin(gw.url, "POST", "/modelway/keys", {"consumer": "x", "team": "nope"})
    assert status == 400 and "unknown team" in body["error"]["message"]
    status, _, body = admin(gw.url, "POST", "/modelway/keys", {"kind": "robot"})
    assert status == 400
    client_key = {"authorization": "Bearer sk-alice"}
    from tests.governance_kit import _request
    assert _request(gw.url + "/modelway/keys", "GET", None, client_key)[0] == 401


def test_a_bad_hash_or_team_stops_start_up(tmp_path, upstream):
    from modelway.errors import ConfigError
    from modelway.runtime import load_gateway

    path = config(tmp_path, upstream).read_text()
    bad = path.replace(hashed("sk-old"), "sk-old-in-clear")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(ConfigError, match="sha256"):
        load_gateway(str(tmp_path / "bad.yaml"))
    (tmp_path / "bad.yaml").write_text(path.replace("team: small", "team: nobody"))
    with pytest.raises(ConfigError, match="unknown team 'nobody'"):
        load_gateway(str(tmp_path / "bad.yaml"))
