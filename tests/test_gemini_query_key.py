"""A Gemini key sent as `?key=` (Google's REST style) through a real gateway, curl-style
(httpx), to a recording upstream speaking Gemini's wire format.

The key is read as `x-goog-api-key` is: it authenticates against `gateway.api_keys` and the
`keys` plugin, makes the request a Google client's (errors in Google's shape, Google's
`/v1/files`), and leaves the query before the request goes upstream, where the gateway's key
is used (the client's own with `auth: passthrough`: tests/test_gemini_passthrough_key.py).
Neither the access log nor the traces carry it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from modelway.testing.fake_gemini import api_key_check, gemini_behavior
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from tests.governance_kit import hashed
from tests.otlp_receiver import OtlpReceiver

GATEWAY_KEY = "AIza-gateway-query"
CLIENT_KEY = "AIza-client-query-key"
ALICE_KEY = "AIza-alice-query-key"
MODEL = "gemini-test"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
GENERATE = f"/v1beta/models/{MODEL}:generateContent"

generate = gemini_behavior(authorized=api_key_check(GATEWAY_KEY))


def behavior(received: Received) -> Reply:
    """generateContent, and a files list for the pass-through paths."""
    if received.path.split("?")[0] in ("/v1beta/files", "/v1/files"):
        return Reply.json({"files": [{"name": "files/one"}]})
    return generate(received)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(behavior) as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as otlp:
        yield otlp


def config(upstream: UpstreamServer, log: str, plugins: dict[str, Any], **gateway: Any) -> dict:
    return {
        "gateway": gateway,
        "plugins": {"gemini": None, "gemini_api": None, "access_log": {"path": log}, **plugins},
        "backends": {"g": {"provider": "gemini", "base_url": upstream.origin,
                           "api_key": GATEWAY_KEY}},
        "routes": [
            {"name": "chat", "match": {"model": "gemini-*"}, "backend": "g"},
            {"name": "files", "match": {"path": "/v1*/files*"}, "backend": "g"},
        ],
    }  # fmt: skip


KEYS = {"keys": {"keys": [{"hash": hashed(ALICE_KEY), "consumer": "alice"}]}}


@pytest.fixture(scope="module", params=["api_keys", "keys"])
def gateway(request, tmp_path_factory, upstream, receiver) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp(request.param)
    tracing = {"tracing": {"endpoint": receiver.url, "export_interval_seconds": 0.05}}
    plugins = {**tracing, **(KEYS if request.param == "keys" else {})}
    made = config(upstream, str(directory / "access.jsonl"), plugins, api_keys=[CLIENT_KEY])
    with run_gateway(made, directory=directory) as gw:
        yield gw


@pytest.fixture
def sent(upstream: UpstreamServer) -> list[Received]:
    upstream.received.clear()
    return upstream.received


def client(gw: RunningGateway) -> httpx.Client:
    return gw.resource("httpx", lambda: httpx.Client(base_url=gw.url, timeout=30))


def keys_of(gw: RunningGateway) -> list[str]:
    """The client keys this gateway takes (the `keys` plugin's consumer too, when it runs)."""
    return [CLIENT_KEY, ALICE_KEY] if "keys" in gw.gateway.config.plugins else [CLIENT_KEY]


def log_lines(gw: RunningGateway) -> list[dict]:
    path = gw.gateway.config.plugins["access_log"]["path"]
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]


def test_a_query_key_authenticates_and_never_goes_upstream(gateway, sent):
    for key in keys_of(gateway):
        answer = client(gateway).post(GENERATE, params={"key": key}, json=BODY)
        assert answer.status_code == 200, answer.text
        assert answer.json()["candidates"][0]["content"]["parts"][0]["text"]
        received = sent.pop()
        assert received.path == GENERATE
        assert received.headers["x-goog-api-key"] == GATEWAY_KEY
        assert key not in json.dumps([received.path, received.headers])
    if ALICE_KEY in keys_of(gateway):  # the keys plugin's consumer, by the query's key
        assert log_lines(gateway)[-1]["consumer"] == "alice"


def test_a_wrong_or_empty_query_key_is_googles_401(gateway, sent):
    for params in ({"key": "AIza-nobody"}, {"key": ""}):
        answer = client(gateway).post(GENERATE, params=params, json=BODY)
        assert answer.status_code == 401
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert sent == []


def test_a_query_key_makes_v1_files_googles(gateway, sent):
    """`/v1/files` is OpenAI's too: with `?key=` it is a Google client's, in Google's shape."""
    denied = client(gateway).get("/v1/files", params={"key": "AIza-nobody"})
    assert denied.status_code == 401 and denied.json()["error"]["status"] == "UNAUTHENTICATED"
    listed = client(gateway).get("/v1/files", params={"pageSize": "2", "key": CLIENT_KEY})
    assert listed.status_code == 200 and listed.json() == {"files": [{"name": "files/one"}]}
    (received,) = sent
    assert received.path == "/v1beta/files?pageSize=2"  # the backend's API version
    assert received.headers["x-goog-api-key"] == GATEWAY_KEY


def test_the_header_wins_over_the_query(gateway, sent):
    answer = client(gateway).post(GENERATE, params={"key": "AIza-nobody"}, json=BODY,
                                  headers={"x-goog-api-key": CLIENT_KEY})
    assert answer.status_code == 200
    assert "key=" not in sent[0].path


def test_the_key_is_in_neither_the_access_log_nor_the_traces(gateway, sent, receiver):
    secret = "AIza-must-not-be-logged"
    before = len(receiver.spans)
    client(gateway).post(GENERATE, params={"key": secret, "alt": "json"}, json=BODY)
    client(gateway).post(GENERATE, params={"key": CLIENT_KEY}, json=BODY)
    client(gateway).get("/v1beta/files", params={"key": CLIENT_KEY})
    records = log_lines(gateway)[-3:]
    assert [r["status"] for r in records] == [401, 200, 200]
    assert [r["path"] for r in records] == [GENERATE, GENERATE, "/v1beta/files"]
    spans = receiver.wait_for(before + 3)[before:]  # a request span each, at least
    assert GENERATE in {span["attributes"].get("url.path") for span in spans}
    for text in (json.dumps(log_lines(gateway)), json.dumps(spans, default=str)):
        assert secret not in text and CLIENT_KEY not in text and ALICE_KEY not in text
