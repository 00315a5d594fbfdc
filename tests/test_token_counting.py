"""Token counting through a real gateway, with the official SDKs as clients.

`anthropic`'s `messages.count_tokens` (and the beta one, `?beta=true`) and `google-genai`'s
`models.count_tokens`, each against every kind of backend: the same API counts itself (the
client's own body goes upstream), the other counting API is asked in its own shape
(Anthropic's count_tokens <-> Gemini's countTokens through the hub), and every other
backend (OpenAI, the mock) gets no request at all: the gateway answers with its offline
estimate and the header `x-modelway-token-count: estimate`. Upstreams are the fake Anthropic,
Gemini and OpenAI servers of `modelway.testing`, which record what they receive.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import types

from modelway import tokens
from modelway.testing import fake_anthropic, fake_gemini
from modelway.testing.fake_anthropic import AnthropicMessages
from modelway.testing.fake_gemini import gemini_behavior
from modelway.testing.fake_openai import openai_behavior
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

CLIENT_KEY = "mw-client-count-3f"
ANTHROPIC_KEY = "sk-ant-gateway"
GEMINI_KEY = "AIza-gateway-count-7d"
OPENAI_KEY = "sk-openai-count-1a"
HEADER = "x-modelway-token-count"

SYSTEM = "You are terse."
MESSAGES: list[Any] = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "Let me look."},
    {"role": "user", "content": [{"type": "text", "text": "Please answer in Celsius."}]},
]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather of a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
ASK = "How many tokens is this sentence?"


def overloaded(received: Received) -> Reply:
    return fake_anthropic.error_reply(529, "overloaded_error", "Overloaded")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, UpstreamServer]]:
    with (
        UpstreamServer(AnthropicMessages(api_key=ANTHROPIC_KEY)) as ant,
        UpstreamServer(gemini_behavior()) as gem,
        UpstreamServer(openai_behavior) as oai,
        UpstreamServer(overloaded) as down,
    ):
        yield {"ant": ant, "gem": gem, "oai": oai, "down": down}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, servers: dict[str, UpstreamServer]) -> Iterator[RunningGateway]:
    config = {
        "plugins": ["anthropic", "anthropic_api", "gemini", "gemini_api", "openai", "mock"],
        "gateway": {"api_keys": [CLIENT_KEY]},
        "backends": {
            "ant": {
                "provider": "anthropic",
                "base_url": servers["ant"].url.removesuffix("/v1"),
                "api_key": ANTHROPIC_KEY,
                "model": "claude-up",
            },
            "gem": {
                "provider": "gemini",
                "base_url": f"http://127.0.0.1:{servers['gem'].port}",
                "api_key": GEMINI_KEY,
                "model": "gemini-up",
            },
            "oai": {"provider": "openai", "base_url": servers["oai"].url, "api_key": OPENAI_KEY},
            "mock": {"provider": "mock", "chunk_delay_ms": 0},
            "down": {
                "provider": "anthropic",
                "base_url": servers["down"].url.removesuffix("/v1"),
                "api_key": ANTHROPIC_KEY,
            },
        },
        "routes": [
            {"match": {"model": "claude-*"}, "backend": "ant"},
            {"match": {"model": "gemini-*"}, "backend": "gem"},
            {"match": {"model": "gpt-*"}, "backend": "oai"},
            {"match": {"model": "mock-*"}, "backend": "mock"},
            {
                "match": {"model": "failing-*"},
                "backend": "down",
                "failover": {"groups": [["oai"], ["gem"]], "max_attempts": 3},
            },
        ],
    }
    with run_gateway(config, directory=tmp_path_factory.mktemp("counting")) as gw:
        yield gw


@pytest.fixture
def up(servers: dict[str, UpstreamServer]) -> dict[str, UpstreamServer]:
    for server in servers.values():
        server.received.clear()
    return servers


def claude(gateway: RunningGateway) -> anthropic.Anthropic:
    return gateway.resource(
        "anthropic", lambda: anthropic.Anthropic(api_key=CLIENT_KEY, base_url=gateway.url)
    )


def gemini(gateway: RunningGateway) -> genai.Client:
    options = types.HttpOptions(base_url=gateway.url, api_version="v1beta")
    return gateway.resource("genai", lambda: genai.Client(api_key=CLIENT_KEY, http_options=options))


def count_messages(gateway: RunningGateway, model: str, beta: bool = False) -> tuple[int, Any]:
    """input_tokens and the answer's headers of an Anthropic SDK count."""
    client = claude(gateway)
    params: dict[str, Any] = {"model": model, "system": SYSTEM, "messages": MESSAGES}
    params["tools"] = TOOLS
    if beta:
        raw = client.beta.messages.with_raw_response.count_tokens(
            betas=["token-counting-2024-11-01"], **params
        )
    else:
        raw = client.messages.with_raw_response.count_tokens(**params)
    return raw.parse().input_tokens, raw.headers


def count_gemini(gateway: RunningGateway, model: str) -> tuple[int, Any]:
    answer = gemini(gateway).models.count_tokens(model=model, contents=ASK)
    headers = answer.sdk_http_response.headers if answer.sdk_http_response else {}
    assert answer.total_tokens is not None
    return answer.total_tokens, headers or {}


# ------------------------------------------------------------------ an Anthropic client


@pytest.mark.parametrize("beta", [False, True], ids=["messages", "beta"])
def test_anthropic_backend_counts_the_clients_own_body(gateway, up, beta):
    count, headers = count_messages(gateway, "claude-sonnet-4-5", beta)
    (received,) = up["ant"].received
    # anthropic 0.x sends the beta count with ?beta=true, 2.x without it
    assert received.path in ("/v1/messages/count_tokens", "/v1/messages/count_tokens?beta=true")
    assert beta or received.path == "/v1/messages/count_tokens"
    assert received.json == {
        "model": "claude-up",
        "system": SYSTEM,
        "messages": MESSAGES,
        "tools": TOOLS,
    }
    assert received.headers["x-api-key"] == ANTHROPIC_KEY
    if beta:
        assert "token-counting-2024-11-01" in received.headers["anthropic-beta"]
    assert count == fake_anthropic.count_for(received.json)
    assert HEADER not in headers


def test_gemini_backend_counts_an_anthropic_request(gateway, up):
    count, headers = count_messages(gateway, "gemini-2.5-flash")
    (received,) = up["gem"].received
    assert received.path == "/v1beta/models/gemini-up:countTokens"
    assert received.headers["x-goog-api-key"] == GEMINI_KEY
    inner = received.json["generateContentRequest"]
    assert set(received.json) == {"generateContentRequest"}
    assert inner["model"] == "models/gemini-up"
    assert inner["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    texts = [[p.get("text") for p in c["parts"]] for c in inner["contents"]]
    assert texts == [
        ["What is the weather in Paris?"],
        ["Let me look."],
        ["Please answer in Celsius."],
    ]
    assert [c["role"] for c in inner["contents"]] == ["user", "model", "user"]
    declared = inner["tools"][0]["functionDeclarations"][0]
    assert declared["name"] == "get_weather"
    assert "generationConfig" not in inner
    assert count == fake_gemini.count_for(received.json)
    assert HEADER not in headers


@pytest.mark.parametrize("model", ["gpt-4o", "mock-model"])
@pytest.mark.parametrize("beta", [False, True], ids=["messages", "beta"])
def test_other_backends_answer_an_estimate(gateway, up, model, beta):
    count, headers = count_messages(gateway, model, beta)
    assert all(not server.received for server in up.values())
    body = {"model": model, "system": SYSTEM, "messages": MESSAGES, "tools": TOOLS}
    assert count == tokens.estimate_messages(body) > 0
    assert headers[HEADER] == "estimate"


# ------------------------------------------------------------------ a Gemini client


def test_gemini_backend_counts_the_clients_own_body(gateway, up):
    count, headers = count_gemini(gateway, "gemini-2.5-flash")
    (received,) = up["gem"].received
    assert received.path == "/v1beta/models/gemini-up:countTokens"
    assert received.json == {"contents": [{"parts": [{"text": ASK}], "role": "user"}]}
    assert count == fake_gemini.count_for(received.json)
    assert HEADER not in headers


def test_anthropic_backend_counts_a_gemini_request(gateway, up):
    count, headers = count_gemini(gateway, "claude-sonnet-4-5")
    (received,) = up["ant"].received
    assert received.path == "/v1/messages/count_tokens"
    assert received.headers["x-api-key"] == ANTHROPIC_KEY
    assert received.json == {
        "model": "claude-up",
        "messages": [{"role": "user", "content": ASK}],
    }
    assert count == fake_anthropic.count_for(received.json)
    assert HEADER not in headers


@pytest.mark.parametrize("model", ["gpt-4o", "mock-model"])
def test_other_backends_answer_a_gemini_estimate(gateway, up, model):
    count, headers = count_gemini(gateway, model)
    assert all(not server.received for server in up.values())
    body = {"contents": [{"parts": [{"text": ASK}], "role": "user"}]}
    assert count == tokens.estimate_gemini(body) > 0
    assert headers[HEADER] == "estimate"


def test_beta_query_passes_to_an_anthropic_backend_and_counts_elsewhere(gateway, up):
    headers = {"x-api-key": CLIENT_KEY, "content-type": "application/json"}
    headers["anthropic-version"] = "2023-06-01"
    for model, estimated in (("claude-x", False), ("gpt-4o", True)):
        body = json.dumps({"model": model, "messages": MESSAGES}).encode()
        connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
        try:
            connection.request("POST", "/v1/messages/count_tokens?beta=true", body, headers)
            answer = connection.getresponse()
            data = json.loads(answer.read())
            assert answer.status == 200
            assert (answer.getheader(HEADER) == "estimate") is estimated
        finally:
            connection.close()
        if estimated:
            assert data == {"input_tokens": tokens.estimate_messages(json.loads(body))}
        else:
            (received,) = up["ant"].received
            assert received.path == "/v1/messages/count_tokens?beta=true"
            assert data == {"input_tokens": fake_anthropic.count_for(received.json)}


def test_a_gemini_count_without_contents_is_a_google_400(gateway, up):
    for model in ("gpt-4o", "claude-x"):
        connection = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
        try:
            path = f"/v1beta/models/{model}:countTokens"
            headers = {"x-goog-api-key": CLIENT_KEY, "content-type": "application/json"}
            connection.request("POST", path, b"{}", headers)
            answer = connection.getresponse()
            error = json.loads(answer.read())["error"]
        finally:
            connection.close()
        assert answer.status == 400
        assert error["status"] == "INVALID_ARGUMENT" and "contents" in error["message"]
        assert answer.getheader(HEADER) is None
    assert all(not server.received for server in up.values())


def test_a_count_fails_over_only_to_backends_that_count(gateway, up):
    count, headers = count_messages(gateway, "failing-model")
    assert [r.path for r in up["down"].received] == ["/v1/messages/count_tokens"]
    assert not up["oai"].received  # cannot count: skipped, never estimated
    (received,) = up["gem"].received
    assert received.path == "/v1beta/models/gemini-up:countTokens"
    assert count == fake_gemini.count_for(received.json)
    assert HEADER not in headers
