"""Reasoning to a Gemini backend on the hub lane: the official `openai` and `anthropic` SDKs,
a real gateway, and a recording upstream that speaks Gemini's wire format and thinks.

The upstream must receive the client's reasoning as `generationConfig.thinkingConfig`
(a budget, or a level on Gemini 3); its thought parts must reach the client as reasoning
(`reasoning_content`, thinking blocks), with `thoughtsTokenCount` as the reasoning tokens;
and the signature Gemini put on a function call must come back on that call when an
Anthropic client sends the signed thinking block back (pairs: openai/anthropic -> gemini,
vertex Gemini; whole and streamed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from modelway.plugins.ingress.gemini.reasoning import delta_parts, thought_parts
from modelway.plugins.providers.gemini.reasoning import thinking_config
from modelway.plugins.providers.gemini.request import to_gemini_request
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

GEMINI_KEY = "AIza-gateway-reason-71"
TOKEN = "ya29.vertex-reason-71"
THOUGHTS = ["The user wants ", "the weather in Paris."]
THOUGHT = "".join(THOUGHTS)
CALL_SIGNATURE = "Q2FsbFNpZ25hdHVyZQ=="
TEXT_SIGNATURE = "VGV4dFNpZ25hdHVyZQ=="
USAGE = {
    "promptTokenCount": 30,
    "candidatesTokenCount": 6,
    "thoughtsTokenCount": 7,
    "totalTokenCount": 43,
}
CALL = {"name": "get_weather", "args": {"city": "Paris"}}
METHOD = re.compile(r"/models/(?P<model>[^/:?]+):(?P<method>\w+)")

# ------------------------------------------------------------------ the thinking upstream


def answer_parts(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Thought parts (when asked for), then a signed function call when tools are declared
    and no result came back yet, else signed text."""
    config = request.get("generationConfig", {}).get("thinkingConfig", {})
    thoughts = config.get("includeThoughts") is True
    parts = [{"text": t, "thought": True} for t in THOUGHTS] if thoughts else []
    last = request["contents"][-1]["parts"]
    if request.get("tools") and not any("functionResponse" in p for p in last):
        return [*parts, {"functionCall": CALL, "thoughtSignature": CALL_SIGNATURE}]
    text = "It is sunny." if any("functionResponse" in p for p in last) else "Hello."
    return [*parts, {"text": text, "thoughtSignature": TEXT_SIGNATURE}]


def event(parts: list[dict[str, Any]], model: str, finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "r1"}
    if finish:
        candidate["finishReason"] = "STOP"
        out["usageMetadata"] = USAGE
    return out


def thinking_gemini(received: Received) -> Reply:
    """generateContent and streamGenerateContent?alt=sse, one event per part when streamed."""
    found = METHOD.search(received.path)
    assert found is not None, received.path
    parts = answer_parts(received.json)
    if found["method"] == "generateContent":
        return Reply.json(event(parts, found["model"], True))
    events = [event([p], found["model"], False) for p in parts] + [event([], found["model"], True)]
    chunks = [b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events]
    return Reply(headers={"content-type": "text/event-stream"}, chunks=chunks)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(thinking_gemini) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "plugins": ["gemini", "vertex", "anthropic_api"],
        "backends": {
            "g": {"provider": "gemini", "base_url": upstream.url, "api_key": GEMINI_KEY,
                  "model": "gemini-2.5-flash"},
            "v": {"provider": "vertex", "base_url": upstream.url, "project": "p1",
                  "location": "us-central1", "access_token": TOKEN,
                  "model": "gemini-3-flash-preview"},
        },
        "routes": [
            {"match": {"model": "g-*"}, "backend": "g"},
            {"match": {"model": "v-*"}, "backend": "v"},
        ],
    }
    with run_gateway(config, directory=tmp_path_factory.mktemp("gemini-reasoning")) as gw:
        yield gw


@pytest.fixture
def sent(upstream: UpstreamServer) -> list[Received]:
    upstream.received.clear()
    return upstream.received


def thinking_of(request: Received) -> Any:
    return request.json.get("generationConfig", {}).get("thinkingConfig")


# ------------------------------------------------------------------ OpenAI client

def openai_client(gw: RunningGateway) -> openai.OpenAI:
    return gw.resource("openai", lambda: openai.OpenAI(
        base_url=gw.base_url, api_key="sk-client", max_retries=0))


ASK = [{"role": "user", "content": "Hello?"}]


def test_openai_reasoning_effort_is_a_thinking_budget_and_thoughts_come_back(gateway, sent):
    answer = openai_client(gateway).chat.completions.create(
        model="g-chat", messages=ASK, reasoning_effort="low")
    assert thinking_of(sent[0]) == {"thinkingBudget": 2048, "includeThoughts": True}
    message = answer.choices[0].message
    assert message.content == "Hello."
    assert message.model_extra["reasoning_content"] == THOUGHT
    assert answer.usage.completion_tokens_details.reasoning_tokens == 7
    assert answer.usage.completion_tokens == 6 + 7


def test_openai_streamed_thoughts_and_reasoning_tokens(gateway, sent):
    chunks = list(openai_client(gateway).chat.completions.create(
        model="g-chat", messages=ASK, reasoning_effort="high", stream=True,
        stream_options={"include_usage": True}))
    assert thinking_of(sent[0]) == {"thinkingBudget": 16384, "includeThoughts": True}
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == THOUGHT
    assert "".join(d.content or "" for d in deltas) == "Hello."
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 7


def test_openai_effort_is_a_thinking_level_on_gemini_3_and_the_call_keeps_its_signature(
    gateway, sent
):
    client = openai_client(gateway)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    first = client.chat.completions.create(
        model="v-chat", messages=ASK, tools=[tool], reasoning_effort="medium")
    assert sent[0].path.endswith("/publishers/google/models/gemini-3-flash-preview:generateContent")
    assert thinking_of(sent[0]) == {"thinkingLevel": "medium", "includeThoughts": True}
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["reasoning_content"] == THOUGHT
    call = message["tool_calls"][0]
    assert call["extra_content"] == {"google": {"thought_signature": CALL_SIGNATURE}}
    client.chat.completions.create(
        model="v-chat", tools=[tool], reasoning_effort="medium",
        messages=[*ASK, message, {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}])
    assert sent[1].json["contents"][1]["parts"] == [
        {"functionCall": CALL, "thoughtSignature": CALL_SIGNATURE}
    ]


# ------------------------------------------------------------------ Anthropic client

def anthropic_client(gw: RunningGateway) -> anthropic.Anthropic:
    return gw.resource("anthropic", lambda: anthropic.Anthropic(
        base_url=gw.url, api_key="sk-ant-client", max_retries=0))


TOOL = {"name": "get_weather", "input_schema": {"type": "object",
                                                 "properties": {"city": {"type": "string"}}}}
THINK = {"type": "enabled", "budget_tokens": 2048}
QUESTION = {"role": "user", "content": "Weather in Paris?"}


def ask(client: anthropic.Anthropic, stream: bool, **kwargs: Any) -> Any:
    if not stream:
        return client.messages.create(max_tokens=4096, **kwargs)
    with client.messages.stream(max_tokens=4096, **kwargs) as events:
        return events.get_final_message()


def content_of(message: Any) -> list[dict[str, Any]]:
    return [block.model_dump(exclude_none=True) for block in message.content]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model", ["g-claude", "v-claude"])
def test_anthropic_thinking_tool_conversation_keeps_gemini_signatures(gateway, sent, model, stream):
    client = anthropic_client(gateway)
    first = ask(client, stream, model=model, messages=[QUESTION], tools=[TOOL], thinking=THINK)
    assert thinking_of(sent[0]) == {"thinkingBudget": 2048, "includeThoughts": True}
    thinking, call = content_of(first)
    assert thinking == {"type": "thinking", "thinking": THOUGHT,
                        "signature": f"gemini:call:0:{CALL_SIGNATURE}"}
    assert (call["type"], call["input"]) == ("tool_use", {"city": "Paris"})
    result = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "sunny"}]}
    history = [QUESTION, {"role": "assistant", "content": content_of(first)}, result]
    second = ask(client, stream, model=model, messages=history, tools=[TOOL], thinking=THINK)
    turn = sent[1].json["contents"][1]
    assert turn == {"role": "model", "parts": [
        {"functionCall": CALL, "thoughtSignature": CALL_SIGNATURE}]}
    assert content_of(second) == [
        {"type": "thinking", "thinking": THOUGHT, "signature": f"gemini:{TEXT_SIGNATURE}"},
        {"type": "text", "text": "It is sunny."},
    ]
    third = [*history, {"role": "assistant", "content": content_of(second)},
             {"role": "user", "content": "Thanks."}]
    ask(client, stream, model=model, messages=third, tools=[TOOL], thinking=THINK)
    assert sent[2].json["contents"][3]["parts"] == [
        {"text": "It is sunny.", "thoughtSignature": TEXT_SIGNATURE}]


def test_anthropic_client_without_thinking_gets_text_only(gateway, sent):
    answer = anthropic_client(gateway).messages.create(
        model="g-claude", max_tokens=256, messages=[QUESTION])
    assert "thinkingConfig" not in sent[0].json.get("generationConfig", {})
    assert content_of(answer) == [{"type": "text", "text": "Hello."}]


def test_anthropic_adaptive_thinking_is_dynamic(gateway, sent):
    answer = anthropic_client(gateway).messages.create(
        model="g-claude", max_tokens=256, messages=[QUESTION], thinking={"type": "adaptive"})
    assert thinking_of(sent[0]) == {"thinkingBudget": -1, "includeThoughts": True}
    assert answer.content[0].thinking == THOUGHT


def test_unsendable_reasoning_is_a_400_in_the_client_shape(gateway, sent):
    with pytest.raises(openai.BadRequestError) as bad_effort:
        openai_client(gateway).chat.completions.create(
            model="g-chat", messages=ASK, reasoning_effort="extreme")
    assert "reasoning_effort" in bad_effort.value.message
    assert "Gemini backend" in bad_effort.value.message
    with pytest.raises(anthropic.BadRequestError) as bad_thinking:
        anthropic_client(gateway).messages.create(
            model="v-claude", max_tokens=256, messages=[QUESTION], thinking={"type": "enabled"})
    assert bad_thinking.value.body["type"] == "error"
    assert "thinking" in bad_thinking.value.message
    assert "Gemini backend" in bad_thinking.value.message
    assert sent == []


# ------------------------------------------------------------------ translation, unit


@pytest.mark.parametrize(
    ("body", "model", "config"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 5000}}, "gemini-2.5-pro",
         {"thinkingBudget": 5000, "includeThoughts": True}),
        ({"thinking": {"type": "enabled", "budget_tokens": 5000}, "reasoning_effort": "medium"},
         "gemini-3-pro-preview", {"thinkingBudget": 5000, "includeThoughts": True}),
        ({"thinking": {"type": "disabled"}}, "gemini-2.5-flash", {"thinkingBudget": 0}),
        ({"thinking": {"type": "disabled"}}, "gemini-3-flash", {"thinkingLevel": "minimal"}),
        ({"thinking": {"type": "adaptive"}, "reasoning_effort": "medium"}, "gemini-3-pro",
         {"includeThoughts": True}),
        ({"reasoning_effort": "xhigh"}, "gemini-2.5-flash",
         {"thinkingBudget": 24576, "includeThoughts": True}),
        ({"reasoning_effort": "xhigh"}, "models/gemini-3.1-pro",
         {"thinkingLevel": "high", "includeThoughts": True}),
        ({"reasoning_effort": "minimal"}, "gemini-2.5-flash-lite",
         {"thinkingBudget": 1024, "includeThoughts": True}),
        ({"reasoning_effort": "none"}, "gemini-2.5-flash", {"thinkingBudget": 0}),
        ({}, "gemini-3-pro", {}),
    ],
)
def test_hub_reasoning_as_thinking_config(body, model, config):
    assert thinking_config(body, model) == config


def test_only_gemini_signatures_go_back_and_a_call_keeps_its_own():
    message = {
        "role": "assistant",
        "content": "Checking.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "t", "signature": "anthropic-sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "thinking", "thinking": "", "signature": "gemini:TXT"},
            {"type": "thinking", "thinking": "", "signature": "gemini:call:1:C1"},
            {"type": "thinking", "thinking": "", "signature": "gemini:call:0:STALE"},
        ],
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"},
             "extra_content": {"google": {"thought_signature": "OWN"}}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    }
    body = {"messages": [{"role": "user", "content": "q"}, message]}
    assert to_gemini_request(body, "gemini-2.5-flash")["contents"][1]["parts"] == [
        {"text": "Checking.", "thoughtSignature": "TXT"},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "OWN"},
        {"functionCall": {"name": "g", "args": {}}, "thoughtSignature": "C1"},
    ]


def test_a_gemini_client_gets_call_signatures_on_the_call_only():
    message = {"thinking_blocks": [
        {"type": "thinking", "thinking": "why", "signature": "gemini:call:0:C"},
        {"type": "thinking", "thinking": "", "signature": "gemini:call:1:D"},
    ]}
    assert thought_parts(message) == [{"text": "why", "thought": True}]
    assert delta_parts({"reasoning_signature": "gemini:call:0:C"}) == []
