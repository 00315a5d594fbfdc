"""The Anthropic Messages API as an ingress: translation units, then the `anthropic` SDK end to end.

Unit tests feed the pure translators (plugins/ingress/anthropic) with request, answer
and stream shapes taken from Anthropic's and OpenAI's API references. Integration tests run
the official `anthropic` SDK against a real gateway (the test kit's `run_gateway`) in front of
a real OpenAI-speaking upstream (its `UpstreamServer`) and the in-process mock provider, and
compare what the SDK received with what the upstream produced and what it was sent.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
import yaml

from modelway.errors import GatewayError
from modelway.plugins.ingress.anthropic.errors import error_object
from modelway.plugins.ingress.anthropic.request import to_openai_request
from modelway.plugins.ingress.anthropic.response import to_anthropic_message
from modelway.plugins.ingress.anthropic.schema import error_path, validate_request
from modelway.plugins.ingress.anthropic.stream import AnthropicStreamEncoder, StreamTranslator
from modelway.sse import SSEDecoder
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

CLIENT_KEY = "sk-ant-client-5d21c0"
BACKEND_KEY = "sk-backend-9f03aa"
SSE = {"content-type": "text/event-stream"}

# Tool definition and turn shapes from Anthropic's tool-use guide (get_weather).
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {
                "type": "string",
                "description": "The city and state, e.g. San Francisco, CA",
            },
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}
WEATHER_FUNCTION = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": WEATHER_TOOL["description"],
        "parameters": WEATHER_TOOL["input_schema"],
    },
}
WEATHER_INPUT = {"location": "San Francisco, CA", "unit": "celsius"}
WEATHER_ARGS = json.dumps(WEATHER_INPUT)


def decode(body: dict[str, Any]) -> dict[str, Any]:
    return to_openai_request(validate_request(body))


def rejected(body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        validate_request(body)
    return info.value


# ======================================================================== request decoding


def test_basic_request_from_the_api_reference():
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello, world"}],
    }
    assert decode(body) == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Hello, world"}],
        "max_tokens": 1024,
    }


def test_system_sampling_stop_metadata_and_stream():
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": [
            {"type": "text", "text": "You are a pirate."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": "Hello there."},
            {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
            {"role": "user", "content": [{"type": "text", "text": "Can you explain LLMs?"}]},
        ],
        "stop_sequences": ["\n\nHuman:", "END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
        "stream": True,
        "thinking": {"type": "disabled"},
    }
    assert decode(body) == {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are a pirate.\nBe brief."},
            {"role": "user", "content": "Hello there."},
            {"role": "assistant", "content": "Hi, I'm Claude. How can I help you?"},
            {"role": "user", "content": "Can you explain LLMs?"},
        ],
        "max_tokens": 256,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,  # the hub's: a backend that takes no top_k refuses it (modelway.hubfit)
        "stop": ["\n\nHuman:", "END"],
        "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b",
        "thinking": {"type": "disabled"},  # the hub's: a backend that can think is told not to
        "stream": True,
    }


def test_system_as_a_string():
    body = {
        "model": "m",
        "max_tokens": 5,
        "system": "Respond only in Spanish.",
        "messages": [{"role": "user", "content": "Hello"}],
    }
    assert decode(body)["messages"][0] == {"role": "system", "content": "Respond only in Spanish."}


def test_images_base64_and_url():
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/jpeg",
                            "data": "/9j/4AAQ",
                        },
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://upload.wikimedia.org/a.jpg"},
                    },
                    {"type": "text", "text": "Compare these images."},
                ],
            }
        ],
    }
    assert decode(body)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/a.jpg"}},
                {"type": "text", "text": "Compare these images."},
            ],
        }
    ]


def tool_conversation() -> list[dict[str, Any]]:
    """The tool-use guide's round trip: question, tool_use turn, tool_result turn."""
    return [
        {"role": "user", "content": "What's the weather like in San Francisco?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "I'll check the weather."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "name": "get_weather",
                    "input": WEATHER_INPUT,
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                    "content": "15 degrees",
                },
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]


def test_tools_tool_use_and_tool_result():
    body = {"model": "m", "max_tokens": 5, "tools": [WEATHER_TOOL], "messages": tool_conversation()}
    out = decode(body)
    assert out["tools"] == [WEATHER_FUNCTION]
    assert "tool_choice" not in out
    assert out["messages"] == [
        {"role": "user", "content": "What's the weather like in San Francisco?"},
        {
            "role": "assistant",
            "content": "I'll check the weather.",
            "tool_calls": [
                {
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
        {"role": "user", "content": "Thanks!"},
    ]


def test_parallel_tool_results_with_blocks_and_images():
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
                    {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {"x": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Here you go."},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_a",
                        "content": [
                            {"type": "text", "text": "line 1"},
                            {"type": "text", "text": "line 2"},
                            {
                                "type": "image",
                                "source": {"type": "url", "url": "https://x.test/c.png"},
                            },
                        ],
                    },
                    {"type": "tool_result", "tool_use_id": "toolu_b", "is_error": True},
                ],
            },
        ],
    }
    assert decode(body)["messages"] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {
                    "id": "toolu_b",
                    "type": "function",
                    "function": {"name": "g", "arguments": '{"x":1}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_a", "content": "line 1\nline 2"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": ""},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here you go."},
                {"type": "image_url", "image_url": {"url": "https://x.test/c.png"}},
            ],
        },
    ]


def test_a_url_document_is_refused_for_translated_backends():
    body = {**GOOD, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}]}]}
    with pytest.raises(GatewayError) as info:
        decode(body)
    assert info.value.status == 400 and "'url' source" in info.value.message


def test_documents_become_file_and_text_parts():
    pdf = {"type": "document", "title": "r.pdf",
           "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
    text = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                           "data": "plain words"}}
    body = {**GOOD, "messages": [{"role": "user", "content": [pdf, text]}]}
    assert decode(body)["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "r.pdf",
                                  "file_data": "data:application/pdf;base64,JVBERi0="}},
        {"type": "text", "text": "plain words"}]


def test_thinking_becomes_hub_thinking_and_an_effort():
    body = {**GOOD, "thinking": {"type": "enabled", "budget_tokens": 5000}}
    out = decode(body)
    assert out["thinking"] == body["thinking"] and out["reasoning_effort"] == "medium"
    assert "reasoning_effort" not in decode({**GOOD, "thinking": {"type": "disabled"}})


def test_strict_tools_stay_strict():
    tool = {"name": "f", "input_schema": {"type": "object"}, "strict": True}
    assert decode({**GOOD, "tools": [tool]})["tools"][0]["function"]["strict"] is True


def test_thinking_blocks_sent_back_become_hub_thinking_blocks():
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "EqQB"},
                    {"type": "redacted_thinking", "data": "EmwK"},
                    {"type": "text", "text": "answer"},
                ],
            },
        ],
    }
    assert decode(body)["messages"][1] == {
        "role": "assistant", "content": "answer", "reasoning_content": "hmm",
        "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "EqQB"},
                            {"type": "redacted_thinking", "data": "EmwK"}]}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice(choice, expected):
    body = {
        "model": "m",
        "max_tokens": 5,
        "tools": [WEATHER_TOOL],
        "tool_choice": choice,
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = decode(body)
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_tool_choice_without_tools_is_not_forwarded():
    body = {
        "model": "m",
        "max_tokens": 5,
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert "tool_choice" not in decode(body)


GOOD = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"max_tokens": "10"}, "max_tokens: Input should be a valid integer"),
        ({"model": None}, "model: Field required"),
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role: Input should be"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages.0.content.0.source: Field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: Field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages.0.content.0.text: Input should be a valid string",
        ),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema: Field required"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "tool"}},
            "tool_choice.name: Field required",
        ),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a valid list"),
    ],
)
def test_bad_requests_name_the_field(change, message):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    error = rejected(body)
    assert error.status == 400
    assert error.message.startswith(message), error.message


@pytest.mark.parametrize(
    ("role", "block"),
    [
        ("user", {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
        ("user", {"type": "thinking", "thinking": "hmm", "signature": "s"}),
        ("assistant", {"type": "tool_result", "tool_use_id": "t", "content": "x"}),
        ("assistant", {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}),
    ],
)
def test_blocks_in_the_wrong_role_are_rejected(role, block):
    error = rejected({**GOOD, "messages": [{"role": role, "content": [block]}]})
    assert error.status == 400
    assert error.message == (
        f"messages.0: Value error, {block['type']} blocks are not allowed in {role} messages"
    )


@pytest.mark.parametrize("kind", [["text"], {"t": 1}, 7, None])
@pytest.mark.parametrize("where", ["message", "tool_result"])
def test_a_block_type_that_is_not_a_string_is_a_400(kind, where):
    """Found by the fuzz suite: an unhashable `type` once failed the block-type lookup (500)."""
    block: dict[str, Any] = {"type": kind, "text": "x"}
    if where == "tool_result":
        block = {"type": "tool_result", "tool_use_id": "t", "content": [block]}
    error = rejected({**GOOD, "messages": [{"role": "user", "content": [block]}]})
    assert error.status == 400


def test_unknown_fields_are_accepted_and_left_out_of_the_chat_shape():
    """They travel beside it (`anthropic_unknown`, tests/test_anthropic_unknown.py)."""
    body = {**GOOD, "service_tier": "auto", "container": None, "mcp_servers": []}
    assert decode(body) == {"model": "m", "messages": GOOD["messages"], "max_tokens": 5}


def test_structured_output_format():
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    body = {**GOOD, "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    assert decode(body)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    low = decode({**GOOD, "output_config": {"effort": "low"}})
    assert "response_format" not in low and low["reasoning_effort"] == "low"


def test_error_path_skips_union_tags_and_keeps_missing_fields():
    data = {"messages": [{"content": [{"type": "tool_use", "id": "x"}]}]}
    loc = ("messages", 0, "content", "list[tagged-union[...]]", 0, "tool_use", "name")
    assert error_path(loc, data, True) == "messages.0.content.0.name"
    assert error_path(("messages", 0, "content", "str"), data, False) == "messages.0.content"


# ======================================================================== answers


def completion(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI `chat.completion` as in the chat-completions API reference."""
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


USAGE = {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
}


def encode(body: dict[str, Any], stop: tuple[str, ...] = ()) -> dict[str, Any]:
    return to_anthropic_message(body, model="client-model", stop_sequences=stop, message_id="msg_1")


def test_text_answer():
    body = completion(
        {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": None}, "stop", USAGE
    )
    assert encode(body) == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-2024-08-06",
        "content": [{"type": "text", "text": "Hi! My name is Claude."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1117, "output_tokens": 46},
    }


def test_tool_call_answer():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_ujD3tNNT4rBmZAVDDaxpqLPp",
                "type": "function",
                "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_time", "arguments": ""},
            },
        ],
    }
    out = encode(completion(message, "tool_calls", USAGE))
    assert out["content"] == [
        {
            "type": "tool_use",
            "id": "call_ujD3tNNT4rBmZAVDDaxpqLPp",
            "name": "get_weather",
            "input": WEATHER_INPUT,
        },
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reasons(finish, reason):
    out = encode(completion({"role": "assistant", "content": "x"}, finish, USAGE))
    assert (out["stop_reason"], out["stop_sequence"]) == (reason, None)


def test_stop_sequence_when_the_server_says_which():
    body = completion({"role": "assistant", "content": "x"}, "stop", USAGE)
    body["choices"][0]["stop_reason"] = "END"  # vLLM names the stop string that matched
    assert encode(body, ("END",))["stop_reason"] == "stop_sequence"
    assert encode(body, ("END",))["stop_sequence"] == "END"
    assert encode(body, ("OTHER",))["stop_reason"] == "end_turn"


def test_cached_prompt_tokens_are_cache_reads():
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 1024}}
    out = encode(completion({"role": "assistant", "content": "x"}, "stop", usage))
    assert out["usage"] == {
        "input_tokens": 93,
        "output_tokens": 46,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1024,
    }


def test_cache_writes_are_not_folded_into_input_tokens():
    usage = {**USAGE, "prompt_tokens": 2000, "prompt_tokens_details": {"cached_tokens": 1024},
             "cache_creation_input_tokens": 500}
    out = encode(completion({"role": "assistant", "content": "x"}, "stop", usage))
    assert out["usage"]["input_tokens"] == 2000 - 1524
    assert out["usage"]["cache_creation_input_tokens"] == 500


@pytest.mark.parametrize("reason", ["pause_turn", "refusal", "model_context_window_exceeded"])
def test_a_backends_own_stop_reason_comes_back(reason):
    choice_extra = {"stop_reason": reason}
    body = completion({"role": "assistant", "content": "x"}, "stop", USAGE)
    body["choices"][0].update(choice_extra)
    assert encode(body)["stop_reason"] == reason


def test_refusal_becomes_text():
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    out = encode(completion(message, "content_filter", USAGE))
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"


# ======================================================================== streams


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """An OpenAI `chat.completion.chunk` as in the streaming API reference."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "choices": choices,
        **extra,
    }


STREAM_USAGE = {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}


def text_chunks() -> list[dict[str, Any]]:
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": "!"}),
        chunk({}, "stop"),
        chunk(None, usage=STREAM_USAGE),
    ]


def translate(chunks: list[dict[str, Any]], stop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    translator = StreamTranslator("msg_1", "client-model", stop)
    return [e for c in chunks for e in translator.events(c)] + translator.end()


def test_text_stream_events():
    assert translate(text_chunks()) == [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 25, "output_tokens": 15},
        },
        {"type": "message_stop"},
    ]


def test_events_are_emitted_as_soon_as_known():
    translator = StreamTranslator("msg_1", "m")
    chunks = text_chunks()
    assert [e["type"] for e in translator.events(chunks[0])] == ["message_start"]
    assert [e["type"] for e in translator.events(chunks[1])] == [
        "content_block_start",
        "content_block_delta",
    ]
    assert [e["type"] for e in translator.events(chunks[2])] == ["content_block_delta"]
    assert [e["type"] for e in translator.events(chunks[3])] == ["content_block_stop"]
    assert [e["type"] for e in translator.events(chunks[4])] == ["message_delta"]
    assert [e["type"] for e in translator.end()] == ["message_stop"]


def tool_chunks() -> list[dict[str, Any]]:
    """Text, then two tool calls whose arguments arrive in pieces (OpenAI's streaming shape)."""

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    return [
        chunk({"role": "assistant", "content": "Let me check."}),
        chunk(
            call(
                0,
                id="call_DdmO9pD3xa9XTPNJ32zg2hcA",
                type="function",
                function={"name": "get_weather", "arguments": ""},
            )
        ),
        chunk(call(0, function={"arguments": '{"location": "San Fra'})),
        chunk(call(0, function={"arguments": 'ncisco, CA", "unit": "celsius"}'})),
        chunk(
            call(1, id="call_2", type="function", function={"name": "get_time", "arguments": ""})
        ),
        chunk(call(1, function={"arguments": "{}"})),
        chunk({}, "tool_calls"),
        chunk(None, usage=STREAM_USAGE),
    ]


def test_tool_call_stream_events():
    events = translate(tool_chunks())
    assert events[1:-2] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let me check."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {
                "type": "input_json_delta",
                "partial_json": 'ncisco, CA", "unit": "celsius"}',
            },
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 2},
    ]
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


def reassemble(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client builds from a stream (the SDK's accumulation, written out)."""
    message = dict(events[0]["message"], content=[])
    partial: dict[int, str] = {}
    for event in events[1:]:
        if event["type"] == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            message["content"][event["index"]]["text"] += event["delta"]["text"]
        elif event["type"] == "content_block_delta":
            partial[event["index"]] = (
                partial.get(event["index"], "") + event["delta"]["partial_json"]
            )
        elif event["type"] == "message_delta":
            message.update(event["delta"])
            message["usage"] = {**message["usage"], **event["usage"]}
    for index, text in partial.items():
        message["content"][index]["input"] = json.loads(text)
    return message


def test_reassembled_tool_stream_equals_the_answer():
    answer = completion(
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        "tool_calls",
        STREAM_USAGE,
    )
    answer["model"] = "gpt-4o-mini"
    assert reassemble(translate(tool_chunks())) == encode(answer)


def test_usage_on_the_finish_chunk_and_cache_reads():
    usage = {**STREAM_USAGE, "prompt_tokens_details": {"cached_tokens": 20}}
    events = translate([chunk({"content": "x"}), chunk({}, "length", usage=usage)])
    assert events[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
        "usage": {"input_tokens": 5, "output_tokens": 15, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 20},
    }


def test_stream_without_usage_still_ends_properly():
    events = translate([chunk({"content": "x"}), chunk({}, "stop")])
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2]["usage"] == {"output_tokens": 0}


def test_stream_cut_before_the_finish_closes_its_block():
    events = translate([chunk({"content": "x"})])
    assert [e["type"] for e in events][-3:] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_empty_stream_is_a_valid_message():
    assert [e["type"] for e in translate([])] == ["message_start", "message_delta", "message_stop"]


def test_stream_stop_sequence():
    finish = chunk({}, "stop")
    finish["choices"][0]["stop_reason"] = "END"
    events = translate([chunk({"content": "x"}), finish], ("END",))
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_encoder_writes_named_sse_events():
    encoder = AnthropicStreamEncoder("msg_1", "m")
    data = b"".join(encoder.encode(c) for c in text_chunks()) + encoder.end()
    events = SSEDecoder().feed(data)
    assert [e.event for e in events] == [json.loads(e.data)["type"] for e in events]
    assert events[0].event == "message_start" and events[-1].event == "message_stop"
    assert data.startswith(b"event: message_start\ndata: {")


# ======================================================================== errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (415, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_shape(status, kind):
    error = GatewayError(status, "something went wrong", "server_error", "some_code")
    assert error_object(error) == {
        "type": "error",
        "error": {"type": kind, "message": "something went wrong"},
    }


def test_error_keeps_an_anthropic_type_the_status_does_not_decide():
    error = GatewayError(502, "Overloaded", "overloaded_error")
    assert error_object(error)["error"]["type"] == "overloaded_error"


def test_stream_error_event():
    data = AnthropicStreamEncoder("msg_1", "m").error(GatewayError(529, "Overloaded"))
    assert data == (
        b'event: error\ndata: {"type":"error","error":'
        b'{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )


# ======================================================================== through the gateway

PIECES = ["The", " quick", " brown", " fox", "."]
TEXT = "".join(PIECES)
UP_USAGE = {
    "prompt_tokens": 31,
    "completion_tokens": 17,
    "total_tokens": 48,
    "prompt_tokens_details": {"cached_tokens": 8},
}


def up_completion(request: dict[str, Any], message: dict[str, Any], finish: str) -> bytes:
    body = completion(message, finish, UP_USAGE)
    body["model"] = request["model"]
    return json.dumps(body).encode()


def up_stream(request: dict[str, Any], deltas: list[dict[str, Any]], finish: str) -> list[bytes]:
    """OpenAI SSE: the deltas, the finish chunk, and usage only when asked for."""
    chunks = [chunk(d) for d in deltas] + [chunk({}, finish)]
    if (request.get("stream_options") or {}).get("include_usage") is True:
        chunks.append(chunk(None, usage=UP_USAGE))
    for c in chunks:
        c["model"] = request["model"]
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def text_behavior(received: Received) -> Reply:
    request = received.json
    if request.get("stream"):
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in PIECES]
        return Reply(headers=SSE, chunks=up_stream(request, deltas, "stop"))
    message = {"role": "assistant", "content": TEXT}
    return Reply(body=up_completion(request, message, "stop"))


def tool_behavior(received: Received) -> Reply:
    """Calls get_weather until the conversation holds a tool result, then answers with text."""
    request = received.json
    if request["messages"][-1]["role"] == "tool":
        return text_behavior(received)
    call = {"id": "call_w1", "type": "function", "function": {"name": "get_weather"}}
    if not request.get("stream"):
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {**call, "function": {"name": "get_weather", "arguments": WEATHER_ARGS}}
            ],
        }
        return Reply(body=up_completion(request, message, "tool_calls"))
    pieces = [WEATHER_ARGS[:9], WEATHER_ARGS[9:30], WEATHER_ARGS[30:]]
    first = {**call, "index": 0, "function": {"name": "get_weather", "arguments": ""}}
    deltas = [{"role": "assistant", "content": None, "tool_calls": [first]}] + [
        {"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces
    ]
    return Reply(headers=SSE, chunks=up_stream(request, deltas, "tool_calls"))


def rate_limited(received: Received) -> Reply:
    body = {
        "error": {
            "message": "Rate limit reached for requests",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    headers = {"content-type": "application/json", "retry-after": "7"}
    return Reply(status=429, body=json.dumps(body).encode(), headers=headers)


def error_mid_stream(received: Received) -> Reply:
    """Two text chunks, then an OpenAI `error` event in the stream."""
    deltas = [{"role": "assistant", "content": ""}, {"content": "The"}]
    chunks = up_stream(received.json, deltas, "stop")[:2]
    error = {"error": {"message": "overloaded", "type": "server_error", "code": "overloaded"}}
    return Reply(headers=SSE, chunks=[*chunks, b"data: " + json.dumps(error).encode() + b"\n\n"])


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[UpstreamServer]:
    with UpstreamServer(text_behavior) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream_server: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "plugins": ["openai", "mock", "anthropic_api"],
        "gateway": {"api_keys": [CLIENT_KEY]},
        "backends": {
            "up": {"provider": "openai", "base_url": upstream_server.url, "api_key": BACKEND_KEY},
            "mock": {"provider": "mock", "chunk_delay_ms": 0},
        },
        "routes": [
            {"match": {"model": "claude-mock*"}, "backend": "mock"},
            {"match": {"model": "claude-*"}, "backend": "up"},
        ],
    }
    path = write_config(tmp_path_factory.mktemp("anthropic"), yaml.safe_dump(config))
    with run_gateway(path) as gw:
        yield gw


@pytest.fixture
def up(upstream_server: UpstreamServer) -> UpstreamServer:
    upstream_server.behavior = text_behavior
    upstream_server.received.clear()
    return upstream_server


@pytest.fixture
def client(gateway: RunningGateway) -> anthropic.Anthropic:
    return gateway.closing(
        anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)
    )


ASK = [{"role": "user", "content": "Tell me about foxes."}]
RAW_TYPES = {
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
}


def test_sdk_message_from_an_openai_upstream(client, up):
    message = client.messages.create(
        model="claude-test",
        max_tokens=300,
        system="Be brief.",
        messages=ASK,
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        extra_body={"temperature": 0.2},  # the 2.x SDK has no `temperature` argument
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 23
    assert message.usage.output_tokens == 17
    assert message.usage.cache_read_input_tokens == 8
    sent = up.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {BACKEND_KEY}"
    assert sent.json == {
        "model": "claude-test",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell me about foxes."},
        ],
        "max_tokens": 300,
        "temperature": 0.2,
        "stop": ["END"],
        "user": "user-7",
    }


def stream_both_ways(
    client: anthropic.Anthropic, **params: Any
) -> tuple[Any, list[str], list[Any]]:
    """`messages.stream` (final message and raw event types) and `create(stream=True)` events."""
    with client.messages.stream(**params) as stream:
        helper_types = [e.type for e in stream if e.type in RAW_TYPES]
        final = stream.get_final_message()
    raw = list(client.messages.create(stream=True, **params))
    return final, helper_types, raw


def test_sdk_stream_equals_the_message(client, up):
    params = {"model": "claude-test", "max_tokens": 300, "messages": ASK}
    whole = client.messages.create(**params)
    final, helper_types, raw = stream_both_ways(client, **params)
    assert helper_types == [e.type for e in raw]
    assert [e.type for e in raw] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * len(PIECES),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "".join(e.delta.text for e in raw if e.type == "content_block_delta") == TEXT
    assert final.content[0].text == whole.content[0].text == TEXT
    assert final.stop_reason == whole.stop_reason == "end_turn"
    assert final.usage.input_tokens == whole.usage.input_tokens == 23
    assert final.usage.output_tokens == whole.usage.output_tokens == 17
    assert final.usage.cache_read_input_tokens == whole.usage.cache_read_input_tokens == 8
    assert up.last.json["stream"] is True
    assert up.last.json["stream_options"] == {"include_usage": True}


def test_sdk_text_stream_helper(client, up):
    with client.messages.stream(model="claude-test", max_tokens=10, messages=ASK) as stream:
        pieces = list(stream.text_stream)
    assert pieces == PIECES


def test_sdk_against_the_mock_provider(client):
    params = {"model": "claude-mock-1", "max_tokens": 50, "messages": ASK}
    whole = client.messages.create(**params)
    final, helper_types, raw = stream_both_ways(client, **params)
    expected = "This is a mock reply from modelway. You said: Tell me about foxes."
    assert whole.content[0].text == final.content[0].text == expected
    assert whole.model == final.model == "mock/claude-mock-1"
    assert whole.usage.output_tokens == final.usage.output_tokens > 0
    assert whole.usage.input_tokens == final.usage.input_tokens > 0
    assert helper_types == [e.type for e in raw]
    assert raw[-2].type == "message_delta" and raw[-2].delta.stop_reason == "end_turn"


def test_sdk_tool_round_trip(client, up):
    up.behavior = tool_behavior
    params = {"model": "claude-test", "max_tokens": 300, "tools": [WEATHER_TOOL], "messages": ASK}
    first = client.messages.create(**params, tool_choice={"type": "any"})
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["tool_use"]
    use = first.content[0]
    assert (use.id, use.name, use.input) == ("call_w1", "get_weather", WEATHER_INPUT)
    assert up.last.json["tools"] == [WEATHER_FUNCTION]
    assert up.last.json["tool_choice"] == "required"
    turn = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "15 degrees"}],
        },
    ]
    second = client.messages.create(**{**params, "messages": turn})
    assert second.content[0].text == TEXT
    assert second.stop_reason == "end_turn"
    assert up.last.json["messages"] == [
        {"role": "user", "content": "Tell me about foxes."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"location":"San Francisco, CA","unit":"celsius"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": "15 degrees"},
    ]


def test_sdk_streamed_tool_call_equals_the_message(client, up):
    up.behavior = tool_behavior
    params = {"model": "claude-test", "max_tokens": 300, "tools": [WEATHER_TOOL], "messages": ASK}
    whole = client.messages.create(**params)
    final, helper_types, raw = stream_both_ways(client, **params)
    assert helper_types == [e.type for e in raw]
    assert raw[1].type == "content_block_start" and raw[1].content_block.type == "tool_use"
    partial = [e.delta.partial_json for e in raw if e.type == "content_block_delta"]
    assert "".join(partial) == WEATHER_ARGS and len(partial) == 3
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        b.model_dump(exclude_none=True) for b in whole.content
    ]
    assert final.content[0].input == WEATHER_INPUT
    assert final.stop_reason == whole.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (23, 17)


def post_raw(gateway: RunningGateway, body: bytes, key: str = CLIENT_KEY) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=30)
    headers = {"content-type": "application/json", "x-api-key": key}
    conn.request("POST", "/v1/messages", body=body, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def test_missing_max_tokens_is_an_anthropic_400(gateway, client, up):
    body = {"model": "claude-test", "messages": ASK}
    status, data = post_raw(gateway, json.dumps(body).encode())
    assert status == 400
    assert data == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post("/v1/messages", cast_to=anthropic.types.Message, body=body)
    assert info.value.status_code == 400
    assert info.value.body == data
    assert up.received == []


def test_malformed_json_is_an_anthropic_400(gateway, client, up):
    status, data = post_raw(gateway, b'{"model": "claude-test",')
    assert status == 400
    assert data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in data["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post(
            "/v1/messages",
            cast_to=anthropic.types.Message,
            content=b"[not json",
        )
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert up.received == []


def test_sdk_invalid_field_is_bad_request(client, up):
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="claude-test", max_tokens=10, messages=ASK, extra_body={"temperature": 3}
        )
    assert info.value.body["error"]["message"].startswith("temperature:")


def test_upstream_429_is_a_rate_limit_error(client, up):
    up.behavior = rate_limited
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-test", max_tokens=10, messages=ASK)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Rate limit reached for requests"},
    }
    with (
        pytest.raises(anthropic.RateLimitError),
        client.messages.stream(model="claude-test", max_tokens=10, messages=ASK) as stream,
    ):
        list(stream)


def test_error_mid_stream_is_an_error_event(client, up):
    up.behavior = error_mid_stream
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in client.messages.create(
            model="claude-test", max_tokens=10, messages=ASK, stream=True
        ):
            seen.append(event.type)
    assert "message_stop" not in seen and "message_delta" not in seen
    assert info.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "overloaded"},
    }


def test_unknown_model_is_not_found(client, up):
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="nobody-serves-this", max_tokens=10, messages=ASK)
    assert info.value.body["error"]["type"] == "not_found_error"


def test_wrong_method_is_an_anthropic_405(gateway):
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=30)
    conn.request("GET", "/v1/messages", headers={"x-api-key": CLIENT_KEY})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    assert response.status == 405
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"


def test_key_as_x_api_key_or_bearer(gateway, up):
    by_header = gateway.closing(
        anthropic.Anthropic(base_url=gateway.url, api_key=CLIENT_KEY, max_retries=0)
    )
    by_bearer = gateway.closing(
        anthropic.Anthropic(base_url=gateway.url, auth_token=CLIENT_KEY, max_retries=0)
    )
    for sdk in (by_header, by_bearer):
        answer = sdk.messages.create(model="claude-test", max_tokens=10, messages=ASK)
        assert answer.content[0].text == TEXT
    wrong = gateway.closing(
        anthropic.Anthropic(base_url=gateway.url, api_key="sk-wrong", max_retries=0)
    )
    with pytest.raises(anthropic.AuthenticationError) as info:
        wrong.messages.create(model="claude-test", max_tokens=10, messages=ASK)
    assert info.value.body["error"]["type"] == "authentication_error"
    assert all(r.headers["authorization"] == f"Bearer {BACKEND_KEY}" for r in up.received)


def test_sdk_sends_anthropic_version(gateway, up, client):
    """The SDK's own headers are accepted; they do not leak to the OpenAI upstream."""
    client.messages.create(model="claude-test", max_tokens=10, messages=ASK)
    assert "anthropic-version" not in up.last.headers
    assert "x-api-key" not in up.last.headers
