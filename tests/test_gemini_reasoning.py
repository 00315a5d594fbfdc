"""Gemini reasoning across APIs: a `google-genai` client, a real gateway, an Anthropic backend.

The SDK asks with `thinkingConfig`; the recording Anthropic upstream must see `thinking`
with the budget. Its signed thinking block comes back as a thought part carrying the
signature; the SDK sends that turn back with the function response, and the upstream must
see the thinking block, signature and text unchanged, before the tool_use it belongs to.
Cache reads come back as `cachedContentTokenCount`. Unit checks cover `thinkingLevel`,
dynamic budgets and streamed thought parts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import types

from modelway.plugins.ingress.gemini import GeminiStreamEncoder
from modelway.plugins.ingress.gemini.reasoning import Thoughts, hub_reasoning
from modelway.testing.fake_anthropic import AnthropicMessages, _message, stream_bytes
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Reply, UpstreamServer

CLIENT_KEY = "mw-client-reason-5e"
ANTHROPIC_KEY = "sk-ant-gateway"
SIGNATURE = "EqQBCkgIARABGAIiQL1sig=="
THOUGHT = "The user wants Paris weather; call the tool."
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather of a city.",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


def thinking_then_tool(body: dict[str, Any]) -> Reply | None:
    """First turn: a signed thinking block and a tool call; later turns: the default."""
    last = body["messages"][-1]["content"]
    if isinstance(last, list) and any(b.get("type") == "tool_result" for b in last):
        return None
    content = [
        {"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE},
        {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    message = _message(body, content, "tool_use")
    if body.get("stream"):
        return Reply(headers={"content-type": "text/event-stream"}, chunks=stream_bytes(message))
    return Reply(body=json.dumps(message).encode())


@pytest.fixture(scope="module")
def ant() -> Iterator[UpstreamServer]:
    behavior = AnthropicMessages(api_key=ANTHROPIC_KEY)
    behavior.reply = thinking_then_tool
    with UpstreamServer(behavior) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, ant: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "plugins": ["anthropic", "gemini_api"],
        "gateway": {"api_keys": [CLIENT_KEY]},
        "backends": {
            "ant": {
                "provider": "anthropic",
                "base_url": ant.url.removesuffix("/v1"),
                "api_key": ANTHROPIC_KEY,
                "model": "claude-up",
            }
        },
        "routes": [{"match": {"model": "*"}, "backend": "ant"}],
    }
    with run_gateway(config, directory=tmp_path_factory.mktemp("reasoning")) as gw:
        yield gw


def sdk(gateway: RunningGateway) -> genai.Client:
    options = types.HttpOptions(base_url=gateway.url, api_version="v1beta")
    return gateway.resource("genai", lambda: genai.Client(api_key=CLIENT_KEY, http_options=options))


CONFIG = types.GenerateContentConfig(
    thinking_config=types.ThinkingConfig(thinking_budget=2048, include_thoughts=True),
    tools=[types.Tool(function_declarations=[WEATHER])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
)
ASK = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])


def test_streamed_thoughts_go_back_as_one_signed_block(gateway, ant):
    ant.received.clear()
    client = sdk(gateway)
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-pro", contents=[ASK], config=CONFIG)
    )
    assert ant.received[0].json["stream"] is True
    parts = [p for c in chunks if c.candidates for p in (c.candidates[0].content.parts or [])]
    thoughts = [p for p in parts if p.thought]
    assert "".join(p.text or "" for p in thoughts) == THOUGHT
    assert [p.function_call.name for p in parts if p.function_call] == ["get_weather"]
    turn = types.Content(role="model", parts=parts)
    result = types.Part.from_function_response(name="get_weather", response={"temp": "18C"})
    client.models.generate_content(
        model="gemini-2.5-pro",
        contents=[ASK, turn, types.Content(role="user", parts=[result])],
        config=CONFIG,
    )
    blocks = ant.received[1].json["messages"][1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE}
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]


def test_gemini_sdk_thinking_round_trip_through_an_anthropic_backend(gateway, ant):
    ant.received.clear()
    client = sdk(gateway)
    config, ask = CONFIG, ASK
    first = client.models.generate_content(model="gemini-2.5-pro", contents=[ask], config=config)
    sent = ant.received[0].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["max_tokens"] > 2048
    turn = first.candidates[0].content
    thought, call = turn.parts
    assert (thought.thought, thought.text) == (True, THOUGHT)
    assert thought.thought_signature is not None
    assert call.function_call.name == "get_weather"
    usage = first.usage_metadata
    assert usage.cached_content_token_count == 5
    assert usage.prompt_token_count == 11 + 3 + 5

    result = types.Part.from_function_response(name="get_weather", response={"temp": "18C"})
    second = client.models.generate_content(
        model="gemini-2.5-pro",
        contents=[ask, turn, types.Content(role="user", parts=[result])],
        config=config,
    )
    assert "The tool said" in (second.text or "")
    assistant = ant.received[1].json["messages"][1]
    assert assistant["role"] == "assistant"
    blocks = assistant["content"]
    assert blocks[0] == {"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE}
    assert blocks[1]["type"] == "tool_use" and blocks[1]["input"] == {"city": "Paris"}


@pytest.mark.parametrize(
    ("config", "hub"),
    [
        ({"thinkingBudget": 0}, {"thinking": {"type": "disabled"}}),
        ({"thinking_budget": 500}, {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ({"thinkingBudget": -1}, {"reasoning_effort": "medium"}),
        ({"thinkingLevel": "HIGH"}, {"reasoning_effort": "high"}),
        ({"includeThoughts": True}, {"reasoning_effort": "medium"}),
        ({"includeThoughts": False}, {}),
        (None, {}),
    ],
)
def test_thinking_config_as_hub_reasoning(config, hub):
    assert hub_reasoning(config) == hub


def test_streamed_thought_parts_are_one_signed_block():
    thoughts = Thoughts()
    parts: list[dict[str, Any]] = [
        {"text": "The user ", "thought": True},
        {"text": "wants weather.", "thought": True},
        {"text": "", "thought": True, "thoughtSignature": SIGNATURE},
        {"text": "", "thought": True, "thoughtSignature": "redacted:opaque"},
        {"text": "Sure.", "thoughtSignature": "gsig"},
    ]
    assert [thoughts.add(p) for p in parts] == [True, True, True, True, False]
    assert thoughts.fields() == {
        "reasoning_content": "The user wants weather.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "thinking", "thinking": "", "signature": "gemini:gsig"},
        ],
    }


def test_stream_encoder_sends_reasoning_as_thought_parts():
    encoder = GeminiStreamEncoder("m")
    out = encoder.encode(
        {"id": "x", "choices": [{"index": 0, "delta": {"reasoning_content": "Hm"}}]}
    )
    out += encoder.encode(
        {"choices": [{"index": 0, "delta": {"reasoning_signature": SIGNATURE, "content": "Hi"}}]}
    )
    lines = out.decode().splitlines()
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    parts = [p for e in events for p in e["candidates"][0]["content"]["parts"]]
    assert parts == [
        {"text": "Hm", "thought": True},
        {"text": "", "thought": True, "thoughtSignature": SIGNATURE},
        {"text": "Hi"},
    ]
