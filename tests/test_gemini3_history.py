"""Gemini 3 backends on the hub lane: tool history without thought signatures, and thinking
levels per model. The official `openai`, `anthropic` and `google-genai` SDKs, a real gateway,
a recording Gemini upstream (Gemini API and Vertex AI paths).

Gemini 3 refuses a current turn whose steps' first function calls carry no signature; the
gateway puts Google's placeholder there (history from another model, a client that dropped
the signatures) and leaves real signatures and earlier turns alone. A Gemini client's own
body (same-API lane) is never changed. A `reasoning_effort` becomes the nearest thinking
level the model takes (`modelway.plugins.providers.gemini.levels`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from modelway.plugins.providers.gemini.levels import (
    PLACEHOLDER_SIGNATURE,
    nearest_level,
    sign_current_turn,
)
from modelway.plugins.providers.gemini.reasoning import thinking_config
from modelway.testing.fake_gemini import plan_for, whole_response
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

METHOD = re.compile(r"/models/(?P<model>[^/:?]+):generateContent$")
SIGNED = "UmVhbFNpZ25hdHVyZQ=="


def gemini(received: Received) -> Reply:
    """generateContent on any Gemini or Vertex path: fake_gemini's answer."""
    found = METHOD.search(received.path)
    assert found is not None, received.path
    return Reply(body=json.dumps(whole_response(plan_for(received.json, found["model"]))).encode())


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(gemini) as server:
        yield server


def _backend(upstream: UpstreamServer, model: str, vertex: bool = False) -> dict[str, Any]:
    if vertex:
        return {"provider": "vertex", "base_url": upstream.url, "project": "p1",
                "location": "us-central1", "access_token": "ya29.t", "model": model}
    return {"provider": "gemini", "base_url": upstream.url, "api_key": "AIza-g3", "model": model}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream: UpstreamServer) -> Iterator[RunningGateway]:
    models = {
        "pro3": _backend(upstream, "gemini-3-pro-preview"),
        "pro31": _backend(upstream, "gemini-3.1-pro-preview"),
        "flash3": _backend(upstream, "gemini-3-flash-preview", vertex=True),
        "next": _backend(upstream, "gemini-3.5-flash"),
        "flash25": _backend(upstream, "gemini-2.5-flash"),
    }
    config = {
        "plugins": ["gemini", "vertex", "anthropic_api", "gemini_api"],
        "backends": models,
        "routes": [{"match": {"model": name}, "backend": name} for name in models],
    }
    with run_gateway(config, directory=tmp_path_factory.mktemp("gemini3")) as gw:
        yield gw


@pytest.fixture
def sent(upstream: UpstreamServer) -> list[Received]:
    upstream.received.clear()
    return upstream.received


def openai_client(gw: RunningGateway) -> openai.OpenAI:
    return gw.resource("openai", lambda: openai.OpenAI(
        base_url=gw.base_url, api_key="sk-client", max_retries=0))


def anthropic_client(gw: RunningGateway) -> anthropic.Anthropic:
    return gw.resource("anthropic", lambda: anthropic.Anthropic(
        base_url=gw.url, api_key="sk-ant-client", max_retries=0))


def genai_client(gw: RunningGateway) -> genai.Client:
    options = types.HttpOptions(base_url=gw.url, api_version="v1beta")
    return gw.resource("genai", lambda: genai.Client(api_key="AIza-client", http_options=options))


# ------------------------------------------------------------------ signatures

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
    for name in ("get_time", "get_weather")]


def tool_call(call_id: str, name: str, city: str, signature: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"id": call_id, "type": "function", "function": {
        "name": name, "arguments": json.dumps({"city": city})}}
    if signature:
        call["extra_content"] = {"google": {"thought_signature": signature}}
    return call


def result(call_id: str, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def history(first_signature: str | None = None) -> list[dict[str, Any]]:
    """An earlier turn with a call, then a current turn of two steps (parallel calls first)."""
    return [
        {"role": "user", "content": "Time in Paris?"},
        {"role": "assistant", "tool_calls": [tool_call("t0", "get_time", "Paris")]},
        result("t0", "noon"),
        {"role": "assistant", "content": "It is noon."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "tool_calls": [
            tool_call("w1", "get_weather", "Paris", first_signature),
            tool_call("w2", "get_weather", "Rome")]},
        result("w1", "sunny"),
        result("w2", "rain"),
        {"role": "assistant", "tool_calls": [tool_call("w3", "get_weather", "Oslo")]},
        result("w3", "snow"),
    ]


def signatures(contents: list[dict[str, Any]]) -> list[list[str | None]]:
    """Each model content's function-call signatures, in order."""
    return [[part.get("thoughtSignature") for part in content["parts"] if "functionCall" in part]
            for content in contents if content["role"] == "model"]


@pytest.mark.parametrize("model", ["pro3", "flash3"])
def test_openai_history_without_signatures_gets_the_placeholder_in_the_current_turn(
    gateway, sent, model
):
    openai_client(gateway).chat.completions.create(model=model, messages=history(), tools=TOOLS)
    assert signatures(sent[0].json["contents"]) == [
        [None], [], [PLACEHOLDER_SIGNATURE, None], [PLACEHOLDER_SIGNATURE]]


def test_a_real_signature_is_kept_and_only_unsigned_steps_get_the_placeholder(gateway, sent):
    openai_client(gateway).chat.completions.create(
        model="pro3", messages=history(SIGNED), tools=TOOLS)
    assert signatures(sent[0].json["contents"]) == [
        [None], [], [SIGNED, None], [PLACEHOLDER_SIGNATURE]]


def test_gemini_2_5_gets_no_placeholder(gateway, sent):
    openai_client(gateway).chat.completions.create(model="flash25", messages=history(), tools=TOOLS)
    assert signatures(sent[0].json["contents"]) == [[None], [], [None, None], [None]]


def test_anthropic_tool_history_without_thinking_gets_the_placeholder(gateway, sent):
    tool = {"name": "get_weather", "input_schema": {"type": "object"}}
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "P"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    anthropic_client(gateway).messages.create(
        model="flash3", max_tokens=256, messages=messages, tools=[tool])
    assert sent[0].json["contents"][1]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "get_weather", "args": {"city": "P"}},
         "thoughtSignature": PLACEHOLDER_SIGNATURE},
    ]


def test_a_gemini_clients_own_body_is_not_changed(gateway, sent):
    contents = [
        types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
        types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(
            name="get_weather", args={"city": "Paris"}))]),
        types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
            name="get_weather", response={"output": "sunny"}))]),
    ]
    genai_client(gateway).models.generate_content(model="pro3", contents=contents)
    assert sent[0].json["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]


def test_the_current_turn_starts_at_the_users_own_words():
    contents: list[dict[str, Any]] = [
        {"role": "user", "parts": [{"text": "q"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f"}}, {"text": "and?"}]},
        {"role": "model", "parts": [{"text": "hm"}, {"functionCall": {"name": "g"}},
                                    {"functionCall": {"name": "h"}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "g"}}]},
    ]
    sign_current_turn(contents)
    assert signatures(contents) == [[None], [PLACEHOLDER_SIGNATURE, None]]


# ------------------------------------------------------------------ thinking levels


def level_sent(request: Received) -> Any:
    return request.json["generationConfig"]["thinkingConfig"].get("thinkingLevel")


@pytest.mark.parametrize(
    ("model", "effort", "level"),
    [
        ("pro3", "minimal", "low"),
        ("pro3", "medium", "high"),
        ("pro3", "low", "low"),
        ("pro31", "minimal", "low"),
        ("pro31", "medium", "medium"),
        ("flash3", "minimal", "minimal"),
        ("flash3", "xhigh", "high"),
        ("next", "minimal", "minimal"),
    ],
)
def test_openai_effort_is_the_nearest_level_the_model_takes(gateway, sent, model, effort, level):
    openai_client(gateway).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], reasoning_effort=effort)
    assert level_sent(sent[0]) == level


def test_anthropic_disabled_thinking_is_gemini_3_pros_least_level(gateway, sent):
    anthropic_client(gateway).messages.create(
        model="pro3", max_tokens=256, messages=[{"role": "user", "content": "Hi"}],
        thinking={"type": "disabled"})
    assert sent[0].json["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "low"}


@pytest.mark.parametrize(
    ("model", "level", "nearest"),
    [
        ("gemini-3-pro-preview", "minimal", "low"),
        ("gemini-3-pro-preview", "medium", "high"),
        ("models/gemini-3.1-pro-preview", "minimal", "low"),
        ("gemini-3-flash-preview", "medium", "medium"),
        ("gemini-3.1-flash-lite-preview", "minimal", "minimal"),
        ("gemini-3-pro-image-preview", "minimal", "minimal"),
        ("gemini-3.5-flash", "medium", "medium"),
    ],
)
def test_nearest_level_table(model, level, nearest):
    assert nearest_level(model, level) == nearest


def test_thinking_config_of_an_effort_on_gemini_3_pro():
    assert thinking_config({"reasoning_effort": "medium"}, "gemini-3-pro-preview") == {
        "thinkingLevel": "high", "includeThoughts": True}
