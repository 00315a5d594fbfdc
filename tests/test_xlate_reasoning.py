"""Cross-API reasoning and cache accounting through the real gateway: the official anthropic
SDK to an OpenAI-compatible backend that answers with `reasoning_content` (DeepSeek, vLLM),
and the thinking it gave sent back on the next turn (pair: anthropic -> openai-compatible)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from modelway.testing.gateway import run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

THOUGHT = "The user wants the weather; call the tool."


def compatible(received: Received) -> Reply:
    """An OpenAI-compatible server that reasons: `reasoning_content`, a tool call, cache reads."""
    body = received.json
    last = body["messages"][-1]
    message: dict[str, Any] = {"role": "assistant", "reasoning_content": THOUGHT}
    if last["role"] == "tool":
        message["content"], finish = f"The tool said: {last['content']}", "stop"
    else:
        message["content"], finish = None, "tool_calls"
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    usage = {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129,
             "prompt_tokens_details": {"cached_tokens": 100}}
    return Reply.json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                       "model": body["model"], "usage": usage,
                       "choices": [{"index": 0, "message": message, "finish_reason": finish}]})


@pytest.fixture
def gateway(tmp_path):
    with UpstreamServer(compatible) as upstream:
        config = write_config(
            tmp_path,
            f"""
            plugins: [openai, anthropic_api]
            backends:
              ds: {{provider: openai, base_url: "http://127.0.0.1:{upstream.port}/v1",
                   api_key: sk-up, model: deepseek-reasoner}}
            routes:
              - {{match: {{model: "claude-*"}}, backend: ds}}
            """,
        )
        with run_gateway(config) as gw:
            yield gw, upstream


def test_anthropic_client_to_openai_compatible_reasoning_round_trip(gateway):
    gw, upstream = gateway
    client = gw.resource("anthropic", lambda: anthropic.Anthropic(
        base_url=gw.url, api_key="sk-ant-client", max_retries=0))
    tool = {"name": "get_weather", "input_schema": {"type": "object"}}
    question = {"role": "user", "content": "weather in Paris?"}
    first = client.messages.create(
        model="claude-x", max_tokens=2048, messages=[question], tools=[tool],
        thinking={"type": "enabled", "budget_tokens": 1024})
    sent = upstream.last.json
    assert sent["reasoning_effort"] == "low" and "thinking" not in sent  # hub-only stripped
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert first.content[0].thinking == THOUGHT
    assert first.usage.input_tokens == 20 and first.usage.cache_read_input_tokens == 100
    call = first.content[1]
    follow = client.messages.create(
        model="claude-x", max_tokens=2048, tools=[tool],
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[question, {"role": "assistant", "content": first.content},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                "content": "sunny"}]}])
    assistant = upstream.last.json["messages"][1]
    assert assistant["reasoning_content"] == THOUGHT  # the backend gets its reasoning back
    assert "thinking_blocks" not in assistant
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert follow.content[-1].text == "The tool said: sunny"


@pytest.fixture
def claude(tmp_path):
    from tests.responses_upstreams import KEY, AnthropicBackend

    backend = AnthropicBackend()
    with UpstreamServer(backend) as upstream:
        config = write_config(
            tmp_path,
            f"""
            plugins: [anthropic]
            backends:
              c: {{provider: anthropic, base_url: "http://127.0.0.1:{upstream.port}",
                  api_key: {KEY}, model: claude-up}}
            routes:
              - {{match: {{model: "gpt-*"}}, backend: c}}
            """,
        )
        with run_gateway(config) as gw:
            yield gw, backend


def test_openai_client_to_anthropic_thinking_round_trip(claude):
    import openai

    from tests.responses_upstreams import SIGNATURE

    gw, backend = claude
    client = gw.resource("openai", lambda: openai.OpenAI(
        base_url=gw.url + "/v1", api_key="sk-client", max_retries=0))
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    question = {"role": "user", "content": "weather?"}
    first = client.chat.completions.create(
        model="gpt-x", messages=[question], tools=[tool], reasoning_effort="low")
    assert backend.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["thinking_blocks"][0]["signature"] == SIGNATURE
    call = message["tool_calls"][0]
    client.chat.completions.create(
        model="gpt-x", tools=[tool], reasoning_effort="low",
        messages=[question, message, {"role": "tool", "tool_call_id": call["id"],
                                      "content": "sunny"}])
    assistant = backend.requests[-1].json["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": message["reasoning_content"],
                            "signature": SIGNATURE}
    assert assistant[1]["type"] == "tool_use"
