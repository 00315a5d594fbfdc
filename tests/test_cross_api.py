"""The Anthropic API in, a Gemini backend out: the official anthropic SDK through the real
gateway to an upstream that speaks Gemini's wire format, streamed and not, with tools."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from modelway.testing.fake_gemini import gemini_behavior
from modelway.testing.gateway import run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

KEY = "AIza-gateway-key"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}


def key_check(received: Received) -> Reply | None:
    if received.headers.get("x-goog-api-key") == KEY:
        return None
    return Reply(status=401, body=b'{"error": {"code": 401, "status": "UNAUTHENTICATED"}}')


@pytest.fixture
def gateway(tmp_path):
    with UpstreamServer(gemini_behavior("/v1beta/models/", key_check)) as upstream:
        config = write_config(
            tmp_path,
            f"""
            plugins: [gemini, anthropic_api]
            backends:
              g: {{provider: gemini, base_url: "http://127.0.0.1:{upstream.port}",
                  api_key: {KEY}, model: gemini-test}}
            routes:
              - {{match: {{model: "claude-*"}}, backend: g}}
            """,
        )
        with run_gateway(config) as gw:
            yield gw, upstream


def client(gw: Any) -> anthropic.Anthropic:
    return gw.resource(
        "anthropic",
        lambda: anthropic.Anthropic(base_url=gw.url, api_key="sk-ant-client", max_retries=0),
    )


def ask(gw: Any, **kwargs: Any) -> Any:
    return client(gw).messages.create(
        model="claude-x",
        max_tokens=100,
        messages=[{"role": "user", "content": "hello gemini"}],
        **kwargs,
    )


def test_message_from_a_gemini_backend(gateway):
    gw, upstream = gateway
    message = ask(gw)
    assert [b.text for b in message.content if b.type == "text"] == ["echo: hello gemini"]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert upstream.last.path == "/v1beta/models/gemini-test:generateContent"
    assert "sk-ant-client" not in str(upstream.last.headers)


def test_stream_from_a_gemini_backend_equals_the_message(gateway):
    gw, _ = gateway
    whole = ask(gw)
    with client(gw).messages.stream(
        model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "hello gemini"}]
    ) as stream:
        events = [event.type for event in stream]
        streamed = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [b.text for b in streamed.content] == [b.text for b in whole.content]
    assert streamed.stop_reason == whole.stop_reason
    assert streamed.usage.output_tokens == whole.usage.output_tokens


def test_tool_use_round_trip_with_a_gemini_backend(gateway):
    gw, upstream = gateway
    first = ask(gw, tools=[WEATHER])
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use"
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"query": "hello gemini", "n": 0})]
    second = client(gw).messages.create(
        model="claude-x",
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "hello gemini"},
            {"role": "assistant", "content": [u.model_dump() for u in uses]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}],
            },
        ],
    )
    parts = upstream.last.json["contents"][-1]["parts"]
    assert parts[0]["functionResponse"]["name"] == "get_weather"
    assert "sunny" in "".join(b.text for b in second.content if b.type == "text")
