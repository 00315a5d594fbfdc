"""`top_k`, `service_tier`, `context_management` and Anthropic's own tools across APIs, through
a real gateway to recording upstreams of each wire format (OpenAI-compatible, Azure, Gemini,
Bedrock Converse, Anthropic on the hub lane), with the official anthropic, openai and
google-genai SDKs. Each upstream request is checked field by field for what was translated,
dropped (and noted: the access log's `extra.not_sent`, the `x-modelway-not-sent` header) or
refused (a 400 in the client's API shape that names the feature and the backend, with nothing
sent upstream). See docs/TRANSLATION.md and `modelway.hubfit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from modelway.config import BackendConfig
from modelway.hubext import SERVICE_TIER, TOP_K
from modelway.plugins.providers.openai import OpenAIOptions, OpenAIProvider
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.testing.wait import wait_until
from tests.recording import sse_events

CLEARING = {
    "edits": [{"type": "clear_tool_uses_20250919", "keep": {"type": "tool_uses", "value": 3}}]
}
CONTEXT_BETA = "context-management-2025-06-27"
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
HELLO = [{"role": "user", "content": "hello"}]


def chat_answer(model: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": "hi"}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def chat_events(model: str) -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
    ]
    return [*sse_events(chunks, named=False), b"data: [DONE]\n\n"]


GEMINI_ANSWER = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
}
CONVERSE_ANSWER = {
    "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
}
MESSAGE_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-up",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}


def answer(received: Received) -> Reply:
    """Each wire's answer, by path."""
    path = received.path
    if path.endswith("/chat/completions") or "/chat/completions?" in path:
        body = received.json
        if body.get("stream"):
            return Reply.sse(chat_events(body.get("model", "m")))
        return Reply.json(chat_answer(body.get("model", "m")))
    if ":generateContent" in path:
        return Reply.json(GEMINI_ANSWER)
    if path.endswith("/converse"):
        return Reply.json(CONVERSE_ANSWER)
    return Reply.json(MESSAGE_ANSWER)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(answer) as server:
        yield server


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("features-log") / "access.log"


def backends(upstream: UpstreamServer) -> dict[str, Any]:
    bedrock = {"provider": "bedrock", "region": "us-east-1", "base_url": upstream.origin}
    return {
        "vllm": {"provider": "openai", "base_url": upstream.url, "api_key": "k", "model": "qwen"},
        "strict": {
            "provider": "openai",
            "base_url": upstream.url,
            "api_key": "k",
            "model": "gpt-4o",
            "top_k": False,
        },
        "azure-gpt": {
            "provider": "azure",
            "base_url": upstream.origin,
            "api_key": "k",
            "api_version": "2025-04-01-preview",
            "model": "gpt-4o",
        },
        "gem": {
            "provider": "gemini",
            "base_url": upstream.origin,
            "api_key": "k",
            "model": "gemini-2.0-flash",
        },
        "br-claude": {**bedrock, "api_key": "k", "model": "anthropic.claude-3-haiku-20240307-v1:0"},
        "br-llama": {**bedrock, "api_key": "k", "model": "meta.llama3-8b-instruct-v1:0"},
        "claude-hub": {
            "provider": "anthropic",
            "base_url": upstream.origin,
            "api_key": "k",
            "model": "claude-up",
            "same_api": False,
        },
    }


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer, log_path: Path) -> Iterator[RunningGateway]:
    names = ["openai", "anthropic", "gemini", "azure", "bedrock", "anthropic_api", "gemini_api"]
    plugins: dict[str, Any] = dict.fromkeys(names)
    plugins["access_log"] = {"path": str(log_path)}
    config = {
        "plugins": plugins,
        "backends": backends(upstream),
        "routes": [
            {"match": {"model": name}, "backend": name} for name in backends(upstream)
        ] + [{"match": {"model": "strict-or-vllm"}, "backend": "strict",
              "failover": {"groups": [["vllm"]]}}],
    }  # fmt: skip
    with run_gateway(config) as gw:
        yield gw


def sdk_fields(**fields: Any) -> dict[str, Any]:
    """Request fields as `extra_body`: newer anthropic SDKs have no `top_k` or `service_tier`
    arguments (the API's newest version removed sampling), the wire field is the same."""
    return {"extra_body": fields}


def claude(gw: RunningGateway) -> anthropic.Anthropic:
    make = lambda: anthropic.Anthropic(base_url=gw.url, api_key="sk-client", max_retries=0)  # noqa: E731
    return gw.resource("anthropic", make)


def log_record(path: Path, request_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        lines = path.read_text().splitlines() if path.exists() else []
        return next((r for r in map(json.loads, lines) if r["request_id"] == request_id), None)

    return wait_until(find, what=f"the access-log record of {request_id}")


def refused(gw: RunningGateway, upstream: UpstreamServer, **request: Any) -> str:
    """The message of the 400 an Anthropic client gets (nothing sent upstream)."""
    upstream.received.clear()
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude(gw).messages.create(max_tokens=50, messages=HELLO, **request)
    body = raised.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert upstream.received == []
    return str(body["error"]["message"])


# ------------------------------------------------------- Anthropic client -> OpenAI family


def test_to_a_compatible_server_top_k_and_the_tier_go_and_context_management_is_dropped(
    gateway, upstream, log_path
):
    upstream.received.clear()
    raw = claude(gateway).beta.messages.with_raw_response.create(
        model="vllm",
        max_tokens=50,
        messages=HELLO,
        extra_body={"top_k": 5, "service_tier": "standard_only",
                    "context_management": CLEARING},
        betas=[CONTEXT_BETA],
    )
    assert raw.parse().content[0].text == "hi"
    sent = upstream.last.json
    assert (sent[TOP_K], sent[SERVICE_TIER]) == (5, "default")
    assert "context_management" not in sent and "anthropic-beta" not in upstream.last.headers
    assert raw.headers["x-modelway-not-sent"] == "context_management"
    record = log_record(log_path, raw.headers["x-request-id"])
    assert record["extra"]["not_sent"]["fields"] == ["context_management"]
    assert "vllm" in record["extra"]["not_sent"]["reason"]


def test_a_stream_to_a_compatible_server_keeps_the_auto_tier(gateway, upstream):
    upstream.received.clear()
    raw = claude(gateway).messages.with_raw_response.create(
        model="vllm", max_tokens=50, messages=HELLO, stream=True, **sdk_fields(service_tier="auto")
    )
    events = list(raw.parse())
    assert upstream.last.json[SERVICE_TIER] == "auto" and upstream.last.json["stream"] is True
    assert "x-modelway-not-sent" not in raw.headers
    assert events[-1].type == "message_stop"


def test_top_k_to_azure_or_a_server_that_refuses_it_is_a_400_naming_both(gateway, upstream):
    message = refused(gateway, upstream, model="azure-gpt", **sdk_fields(top_k=5))
    assert "top_k" in message and "'azure-gpt'" in message and "azure" in message
    message = refused(gateway, upstream, model="strict", stream=True, **sdk_fields(top_k=5))
    assert "top_k" in message and "'strict'" in message


def test_the_tier_goes_to_azure(gateway, upstream):
    upstream.received.clear()
    claude(gateway).messages.create(
        model="azure-gpt", max_tokens=50, messages=HELLO,
        **sdk_fields(service_tier="standard_only")
    )
    assert upstream.last.json[SERVICE_TIER] == "default" and TOP_K not in upstream.last.json


def test_a_server_tool_is_a_400_naming_the_tool_and_the_backend(gateway, upstream):
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    message = refused(gateway, upstream, model="vllm", tools=[tool, WEB_SEARCH])
    assert "web_search" in message and "web_search_20250305" in message and "'vllm'" in message
    message = refused(gateway, upstream, model="gem", tools=[WEB_SEARCH], stream=True)
    assert "web_search_20250305" in message and "'gem'" in message


def test_mcp_servers_are_a_400_on_an_openai_backend(gateway, upstream):
    server = {"type": "url", "url": "https://mcp.example/sse", "name": "ex"}
    message = refused(gateway, upstream, model="vllm", extra_body={"mcp_servers": [server]})
    assert "mcp_servers" in message and "'vllm'" in message


# ---------------------------------------------------------- other backends, other clients


def test_to_gemini_top_k_is_top_k_and_the_standard_tier_is_dropped(gateway, upstream):
    upstream.received.clear()
    raw = claude(gateway).messages.with_raw_response.create(
        model="gem", max_tokens=50, messages=HELLO, **sdk_fields(top_k=7, service_tier="auto")
    )
    assert raw.parse().content[0].text == "hi"
    config = upstream.last.json["generationConfig"]
    assert config["topK"] == 7 and config["maxOutputTokens"] == 50
    assert "service_tier" not in json.dumps(upstream.last.json)
    assert raw.headers["x-modelway-not-sent"] == "service_tier"


def test_to_bedrock_top_k_is_a_claude_models_own_field(gateway, upstream):
    upstream.received.clear()
    claude(gateway).messages.create(
        model="br-claude", max_tokens=50, messages=HELLO, **sdk_fields(top_k=9)
    )
    assert upstream.last.json["additionalModelRequestFields"] == {"top_k": 9}
    message = refused(gateway, upstream, model="br-llama", **sdk_fields(top_k=9))
    assert "top_k" in message and "'br-llama'" in message and "meta.llama3" in message


def test_on_the_hub_lane_to_anthropic_everything_arrives_as_sent(gateway, upstream):
    upstream.received.clear()
    tool = {"name": "lookup", "input_schema": {"type": "object"}}
    claude(gateway).beta.messages.create(
        model="claude-hub",
        max_tokens=50,
        messages=HELLO,
        extra_body={"top_k": 3, "service_tier": "standard_only",
                    "context_management": CLEARING},
        tools=[tool, WEB_SEARCH],
        betas=[CONTEXT_BETA],
    )
    sent = upstream.last
    body = sent.json
    assert (body["top_k"], body["service_tier"]) == (3, "standard_only")
    assert body["context_management"] == CLEARING
    assert body["tools"] == [{"name": "lookup", "input_schema": {"type": "object"}}, WEB_SEARCH]
    assert CONTEXT_BETA in sent.headers["anthropic-beta"]


def test_an_openai_clients_tier_and_top_k_reach_anthropic(gateway, upstream):
    client = gateway.closing(openai.OpenAI(base_url=gateway.base_url, api_key="sk", max_retries=0))
    upstream.received.clear()
    client.chat.completions.create(
        model="claude-hub", messages=HELLO, service_tier="default", extra_body={"top_k": 4}
    )
    body = upstream.last.json
    assert (body["service_tier"], body["top_k"]) == ("standard_only", 4)
    upstream.received.clear()
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="claude-hub", messages=HELLO, service_tier="flex")
    assert "service_tier" in raised.value.body["message"] and upstream.received == []
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gem", messages=HELLO, service_tier="priority")
    error = raised.value.body
    assert "service_tier 'priority'" in error["message"] and "'gem'" in error["message"]
    assert error["code"] == "unsupported_feature" and upstream.received == []


def test_a_gemini_clients_top_k_reaches_anthropic(gateway, upstream):
    options = types.HttpOptions(base_url=gateway.url)
    client = gateway.closing(genai.Client(api_key="sk", http_options=options))
    upstream.received.clear()
    config = types.GenerateContentConfig(top_k=40, max_output_tokens=30)
    answer = client.models.generate_content(model="claude-hub", contents="hello", config=config)
    assert answer.text == "hi"
    assert upstream.last.json["top_k"] == 40 and upstream.last.json["max_tokens"] == 30


# -------------------------------------------------------------------------- the defaults


@pytest.mark.parametrize(
    ("base_url", "options", "takes_top_k"),
    [
        (None, OpenAIOptions(), False),
        ("https://api.openai.com/v1", OpenAIOptions(), False),
        ("http://vllm:8000/v1", OpenAIOptions(), True),
        ("http://vllm:8000/v1", OpenAIOptions(top_k=False), False),
        (None, OpenAIOptions(top_k=True), True),
        ("http://vllm:8000/v1", OpenAIOptions(api="responses"), False),
    ],
)
def test_which_openai_backends_take_top_k(base_url, options, takes_top_k):
    backend = BackendConfig(provider="openai", base_url=base_url, api_key="k")
    features = OpenAIProvider(backend, options).hub_features("m")
    assert (TOP_K in features, SERVICE_TIER in features) == (takes_top_k, True)


def test_a_backend_that_cannot_take_a_feature_fails_over_to_one_that_can(gateway, upstream):
    upstream.received.clear()
    answer = claude(gateway).messages.create(
        model="strict-or-vllm", max_tokens=50, messages=HELLO, **sdk_fields(top_k=5)
    )
    assert answer.content[0].type == "text"
    (sent,) = upstream.received  # nothing went to the backend that refuses top_k
    assert (sent.json["model"], sent.json["top_k"]) == ("qwen", 5)
