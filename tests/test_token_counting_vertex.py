"""Token counting with Vertex AI backends, through a real gateway, with the official SDKs.

Vertex Claude counts an Anthropic client's request at its one `count-tokens:rawPredict`
endpoint (the model in the body, Vertex's `anthropic_version`); Vertex Gemini counts a Gemini
client's at the model's `:countTokens`. Across APIs on Vertex the gateway estimates. The
upstream is a recording server speaking both publishers' count answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import pytest
from google import genai
from google.genai import types

from modelway import tokens
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

CLIENT_KEY = "mw-client-vertex-count-2b"
TOKEN = "ya29.count-token-8a"
PROJECT, LOCATION = "proj-c", "us-east5"
PREFIX = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers"
CLAUDE, GEMINI = "claude-sonnet-4@20250514", "gemini-2.5-flash"
HEADER = "x-modelway-token-count"
MESSAGES = [{"role": "user", "content": "Count me, please."}]


def counts(received: Received) -> Reply:
    if received.headers.get("authorization") != f"Bearer {TOKEN}":
        return Reply(status=401, body=b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}')
    if received.path == f"{PREFIX}/anthropic/models/count-tokens:rawPredict":
        return Reply(body=json.dumps({"input_tokens": 42}).encode())
    if received.path == f"{PREFIX}/google/models/{GEMINI}:countTokens":
        return Reply(body=json.dumps({"totalTokens": 7}).encode())
    return Reply(status=404, body=b'{"error": {"code": 404, "status": "NOT_FOUND"}}')


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(counts) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream: UpstreamServer) -> Iterator[RunningGateway]:
    vertex = {
        "provider": "vertex",
        "base_url": f"http://127.0.0.1:{upstream.port}",
        "project": PROJECT,
        "location": LOCATION,
        "access_token": TOKEN,
    }
    config = {
        "plugins": ["vertex", "anthropic_api", "gemini_api"],
        "gateway": {"api_keys": [CLIENT_KEY]},
        "backends": {"vxc": {**vertex, "model": CLAUDE}, "vxg": {**vertex, "model": GEMINI}},
        "routes": [
            {"match": {"model": "claude-*"}, "backend": "vxc"},
            {"match": {"model": "gemini-*"}, "backend": "vxg"},
        ],
    }
    with run_gateway(config, directory=tmp_path_factory.mktemp("vcount")) as gw:
        yield gw


@pytest.fixture
def up(upstream: UpstreamServer) -> UpstreamServer:
    upstream.received.clear()
    return upstream


def claude(gateway: RunningGateway) -> anthropic.Anthropic:
    return gateway.resource(
        "anthropic", lambda: anthropic.Anthropic(api_key=CLIENT_KEY, base_url=gateway.url)
    )


def test_vertex_claude_counts_an_anthropic_request(gateway, up):
    raw = claude(gateway).messages.with_raw_response.count_tokens(
        model="claude-x", messages=MESSAGES
    )
    assert raw.parse().input_tokens == 42
    assert raw.headers.get(HEADER) is None
    (received,) = up.received
    assert received.path == f"{PREFIX}/anthropic/models/count-tokens:rawPredict"
    assert received.json["model"] == CLAUDE
    assert received.json["messages"] == MESSAGES
    assert "anthropic_version" in received.json


def test_vertex_gemini_counts_a_gemini_request(gateway, up):
    options = types.HttpOptions(base_url=gateway.url, api_version="v1beta")
    client = gateway.resource(
        "genai", lambda: genai.Client(api_key=CLIENT_KEY, http_options=options)
    )
    answer = client.models.count_tokens(model="gemini-x", contents="Count me, please.")
    assert answer.total_tokens == 7
    (received,) = up.received
    assert received.path == f"{PREFIX}/google/models/{GEMINI}:countTokens"
    assert received.json["contents"][0]["parts"] == [{"text": "Count me, please."}]


def test_vertex_across_apis_is_an_estimate(gateway, up):
    raw = claude(gateway).messages.with_raw_response.count_tokens(
        model="gemini-x", messages=MESSAGES
    )
    assert raw.headers[HEADER] == "estimate"
    body = {"model": "gemini-x", "messages": MESSAGES}
    assert raw.parse().input_tokens == tokens.estimate_messages(body)
    assert not up.received
