"""What the gateway does not know of an Anthropic request, on both lanes: top-level fields it
does not translate (`inference_geo`, `speed`, a future field) and content blocks the chat shape
cannot say (`server_tool_use`, `web_search_tool_result`, `mcp_tool_use`, `container_upload`,
`search_result` in a tool result, a future block type).

Through a real gateway to recording upstreams of each wire format, with the official anthropic
SDK: the same-API lane passes them untouched; the hub lane carries them as sent to backends of
Anthropic's API (Anthropic with `same_api: false`, Bedrock Claude's
`additionalModelRequestFields` for fields) and refuses them elsewhere with a 400 in Anthropic's
shape that names the field or block type and the backend, nothing sent upstream, the route's
next attempt tried first. See docs/TRANSLATION.md and `modelway.hubfit`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from modelway.hubext import ANTHROPIC_UNKNOWN
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from tests.recording import sse_events

HELLO = [{"role": "user", "content": "hello"}]
UNKNOWN = {"inference_geo": "us", "speed": "fast", "future_field_2099": {"x": [1, 2]}}
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
CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "qwen",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
CONVERSE_ANSWER = {
    "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
}

SEARCH_TURN: list[dict[str, Any]] = [
    {"role": "user", "content": "What is new?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me search."},
            {
                "type": "server_tool_use",
                "id": "srvtoolu_1",
                "name": "web_search",
                "input": {"query": "news"},
            },
            {
                "type": "web_search_tool_result",
                "tool_use_id": "srvtoolu_1",
                "content": [
                    {
                        "type": "web_search_result",
                        "url": "https://example.com/a",
                        "title": "A",
                        "encrypted_content": "enc",
                        "page_age": None,
                    }
                ],
            },
            {
                "type": "text",
                "text": "A happened.",
                "citations": [
                    {
                        "type": "web_search_result_location",
                        "url": "https://example.com/a",
                        "title": "A",
                        "encrypted_index": "idx",
                        "cited_text": "A happened",
                    }
                ],
            },
        ],
    },
    {"role": "user", "content": "And then?"},
]
MCP_TURN: list[dict[str, Any]] = [
    {"role": "user", "content": "Ask the tool."},
    {
        "role": "assistant",
        "content": [
            {
                "type": "mcp_tool_use",
                "id": "mcptoolu_1",
                "name": "lookup",
                "server_name": "ex",
                "input": {"q": "x"},
            },
            {
                "type": "mcp_tool_result",
                "tool_use_id": "mcptoolu_1",
                "is_error": False,
                "content": [{"type": "text", "text": "found"}],
            },
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "container_upload", "file_id": "file_1"},
            {"type": "text", "text": "go"},
        ],
    },
]
TOOL_SEARCH_RESULT: list[dict[str, Any]] = [
    {"role": "user", "content": "Look it up."},
    {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "kb", "input": {"q": "x"}}],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": [
                    {
                        "type": "search_result",
                        "source": "https://kb.example/1",
                        "title": "KB 1",
                        "content": [{"type": "text", "text": "the answer"}],
                        "citations": {"enabled": True},
                    }
                ],
            }
        ],
    },
]
FUTURE_BLOCK: list[dict[str, Any]] = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": [{"type": "hologram_20990101", "data": {"k": 1}}]},
    {"role": "user", "content": "again"},
]
KB_TOOL = {"name": "kb", "input_schema": {"type": "object"}}
MESSAGE_EVENTS = [
    {"type": "message_start", "message": {**MESSAGE_ANSWER, "content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
]


def answer(received: Received) -> Reply:
    if "/chat/completions" in received.path:
        return Reply.json(CHAT_ANSWER)
    if received.path.endswith("/converse"):
        return Reply.json(CONVERSE_ANSWER)
    if received.json.get("stream"):
        return Reply.sse(sse_events(MESSAGE_EVENTS))
    return Reply.json(MESSAGE_ANSWER)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(answer) as server:
        yield server


def backends(upstream: UpstreamServer) -> dict[str, Any]:
    bedrock = {"provider": "bedrock", "region": "us-east-1", "base_url": upstream.origin}
    claude = {"provider": "anthropic", "base_url": upstream.origin, "api_key": "k"}
    return {
        "claude": {**claude, "model": "claude-up"},
        "claude-hub": {**claude, "model": "claude-up", "same_api": False},
        "vllm": {"provider": "openai", "base_url": upstream.url, "api_key": "k", "model": "qwen"},
        "gem": {
            "provider": "gemini",
            "base_url": upstream.origin,
            "api_key": "k",
            "model": "gemini-2.0-flash",
        },
        "br-claude": {**bedrock, "api_key": "k", "model": "anthropic.claude-3-haiku-20240307-v1:0"},
        "br-llama": {**bedrock, "api_key": "k", "model": "meta.llama3-8b-instruct-v1:0"},
        "vx-claude": {
            "provider": "vertex",
            "base_url": upstream.origin,
            "project": "p",
            "location": "us-east5",
            "access_token": "ya29.t",
            "model": "claude-sonnet-4-5@20250929",
            "same_api": False,
        },
    }


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    names = backends(upstream)
    routes: list[dict[str, Any]] = [{"match": {"model": n}, "backend": n} for n in names]
    routes.append(
        {
            "match": {"model": "vllm-then-claude"},
            "backend": "vllm",
            "failover": {"groups": [["claude-hub"]]},
        }
    )
    config = {
        "plugins": dict.fromkeys(
            ["openai", "anthropic", "gemini", "bedrock", "vertex", "anthropic_api"]
        ),
        "backends": names,
        "routes": routes,
    }
    with run_gateway(config) as gw:
        yield gw


def claude(gw: RunningGateway) -> anthropic.Anthropic:
    make = lambda: anthropic.Anthropic(base_url=gw.url, api_key="sk-client", max_retries=0)  # noqa: E731
    return gw.resource("anthropic", make)


def sent(gw: RunningGateway, upstream: UpstreamServer, model: str, **request: Any) -> Received:
    """The one request the upstream received for an Anthropic client's request."""
    upstream.received.clear()
    request.setdefault("messages", HELLO)
    claude(gw).messages.create(model=model, max_tokens=50, **request)
    (received,) = upstream.received
    return received


def refused(gw: RunningGateway, upstream: UpstreamServer, model: str, **request: Any) -> str:
    """The message of the 400 in Anthropic's shape (nothing sent upstream)."""
    upstream.received.clear()
    request.setdefault("messages", HELLO)
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude(gw).messages.create(model=model, max_tokens=50, **request)
    body = raised.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert upstream.received == []
    return str(body["error"]["message"])


# ------------------------------------------------------------------- top-level fields


def test_same_api_lane_passes_unknown_fields(gateway, upstream):
    body = sent(gateway, upstream, "claude", extra_body=UNKNOWN).json
    assert {name: body[name] for name in UNKNOWN} == UNKNOWN


@pytest.mark.parametrize("stream", [False, True])
def test_hub_lane_to_anthropic_carries_unknown_fields_as_sent(gateway, upstream, stream):
    upstream.received.clear()
    raw = claude(gateway).messages.with_raw_response.create(
        model="claude-hub", max_tokens=50, messages=HELLO, stream=stream, extra_body=UNKNOWN
    )
    answer = raw.parse()
    text = (
        "".join(e.delta.text for e in answer if e.type == "content_block_delta")
        if stream
        else answer.content[0].text
    )
    assert text == "hi"
    body = upstream.last.json
    assert {name: body[name] for name in UNKNOWN} == UNKNOWN
    assert ANTHROPIC_UNKNOWN not in body and "x-modelway-not-sent" not in raw.headers


def test_unknown_fields_to_an_openai_backend_are_a_400_naming_them_and_the_backend(
    gateway, upstream
):
    message = refused(gateway, upstream, "vllm", extra_body={"inference_geo": "us"})
    assert "'inference_geo'" in message and "'vllm'" in message and "openai" in message
    message = refused(gateway, upstream, "gem", stream=True, extra_body=UNKNOWN)
    assert "'inference_geo', 'speed', 'future_field_2099'" in message and "'gem'" in message


def test_a_null_unknown_field_asks_for_nothing_and_is_dropped(gateway, upstream):
    upstream.received.clear()
    raw = claude(gateway).messages.with_raw_response.create(
        model="vllm", max_tokens=50, messages=HELLO, extra_body={"speed": None}
    )
    assert raw.parse().content[0].text == "hi"
    assert "speed" not in upstream.last.json and ANTHROPIC_UNKNOWN not in upstream.last.json
    assert raw.headers["x-modelway-not-sent"] == "speed"


def test_top_level_cache_control_is_dropped_off_anthropic_and_sent_to_it(gateway, upstream):
    marker = {"type": "ephemeral"}
    upstream.received.clear()
    raw = claude(gateway).messages.with_raw_response.create(
        model="vllm", max_tokens=50, messages=HELLO, extra_body={"cache_control": marker}
    )
    assert raw.headers["x-modelway-not-sent"] == "cache_control"
    assert "cache_control" not in upstream.last.json
    body = sent(gateway, upstream, "claude-hub", extra_body={"cache_control": marker}).json
    assert body["cache_control"] == marker


def test_to_bedrock_claude_unknown_fields_are_the_models_own_fields(gateway, upstream):
    body = sent(gateway, upstream, "br-claude", extra_body={"top_k": 4, **UNKNOWN}).json
    assert body["additionalModelRequestFields"] == {**UNKNOWN, "top_k": 4}
    message = refused(gateway, upstream, "br-llama", extra_body={"speed": "fast"})
    assert "'speed'" in message and "'br-llama'" in message and "meta.llama3" in message


def test_a_backend_that_cannot_take_a_field_fails_over_to_one_that_can(gateway, upstream):
    received = sent(gateway, upstream, "vllm-then-claude", extra_body={"speed": "fast"})
    assert received.path == "/v1/messages" and received.json["speed"] == "fast"


# ------------------------------------------------------------- blocks in the history


@pytest.mark.parametrize("turns", [SEARCH_TURN, MCP_TURN, TOOL_SEARCH_RESULT, FUTURE_BLOCK])
def test_same_api_lane_passes_the_blocks_untouched(gateway, upstream, turns):
    tools = [KB_TOOL] if turns is TOOL_SEARCH_RESULT else anthropic.NOT_GIVEN
    assert sent(gateway, upstream, "claude", messages=turns, tools=tools).json["messages"] == turns


@pytest.mark.parametrize("turns", [SEARCH_TURN, MCP_TURN, TOOL_SEARCH_RESULT, FUTURE_BLOCK])
def test_hub_lane_to_anthropic_carries_the_blocks_as_sent(gateway, upstream, turns):
    tools = [KB_TOOL] if turns is TOOL_SEARCH_RESULT else anthropic.NOT_GIVEN
    body = sent(gateway, upstream, "claude-hub", messages=turns, tools=tools).json
    assert body["messages"] == turns


@pytest.mark.parametrize(
    ("turns", "named"),
    [
        (SEARCH_TURN, "'server_tool_use', 'web_search_tool_result'"),
        (MCP_TURN, "'mcp_tool_use', 'mcp_tool_result', 'container_upload'"),
        (TOOL_SEARCH_RESULT, "'search_result'"),
        (FUTURE_BLOCK, "'hologram_20990101'"),
    ],
)
def test_blocks_to_an_openai_or_gemini_backend_are_a_400_naming_them_and_the_backend(
    gateway, upstream, turns, named
):
    tools = [KB_TOOL] if turns is TOOL_SEARCH_RESULT else anthropic.NOT_GIVEN
    message = refused(gateway, upstream, "vllm", messages=turns, tools=tools)
    assert named in message and "'vllm'" in message
    message = refused(gateway, upstream, "gem", messages=turns, tools=tools, stream=True)
    assert named in message and "'gem'" in message


def test_blocks_to_bedrock_claude_are_a_400_converse_cannot_carry_them(gateway, upstream):
    message = refused(gateway, upstream, "br-claude", messages=SEARCH_TURN)
    assert "'server_tool_use'" in message and "'br-claude'" in message


def test_blocks_fail_over_to_an_anthropic_backend(gateway, upstream):
    received = sent(gateway, upstream, "vllm-then-claude", messages=SEARCH_TURN)
    assert received.path == "/v1/messages" and received.json["messages"] == SEARCH_TURN


def test_a_malformed_known_block_is_still_a_400_naming_the_field(gateway, upstream):
    turns = [{"role": "user", "content": [{"type": "text"}]}]
    message = refused(gateway, upstream, "vllm", messages=turns)
    assert message == "messages.0.content.0.text: Field required"


def test_hub_lane_to_vertex_claude_carries_fields_and_blocks(gateway, upstream):
    received = sent(gateway, upstream, "vx-claude", messages=SEARCH_TURN, extra_body=UNKNOWN)
    assert received.path.endswith(
        "/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    )
    body = received.json
    assert body["messages"] == SEARCH_TURN and "model" not in body
    assert {name: body[name] for name in UNKNOWN} == UNKNOWN
