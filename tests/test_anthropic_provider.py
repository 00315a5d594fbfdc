"""The `anthropic` provider: translation unit tests against Anthropic wire fixtures, and round
trips with the official `openai` SDK through a real gateway to an upstream that speaks the
Messages API (tests/anthropic_wire_fixtures.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent, message_create_params

from modelway.canonical import CanonicalRequest, Operation
from modelway.config import BackendConfig
from modelway.context import ClientInfo, RequestContext
from modelway.errors import GatewayError
from modelway.plugins.providers.anthropic import (
    AnthropicOptions,
    AnthropicProvider,
    AnthropicStreamDecoder,
    messages_url,
)
from modelway.plugins.providers.anthropic import errors as wire_errors
from modelway.plugins.providers.anthropic import request as wire_request
from modelway.plugins.providers.anthropic import response as wire_response
from modelway.plugins.providers.anthropic import stream as wire_stream
from modelway.testing.fake_anthropic import (
    AnthropicMessages,
    answer_for,
    error_reply,
    sse,
    stream_bytes,
    stream_events,
)
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Reply, UpstreamServer
from tests.anthropic_wire_fixtures import (
    BASIC_STREAM,
    LATE_USAGE_STREAM,
    NOT_FOUND_ERROR,
    OVERLOADED_ERROR,
    REFUSAL_STREAM,
    TEXT_MESSAGE,
    TOOL_USE_MESSAGE,
    TOOL_USE_STREAM,
)

CREATED = 1_700_000_000
GATEWAY_KEY = "sk-ant-gateway"
WRONG_KEY = "sk-ant-wrong-0123456789"
PARAMS = message_create_params.MessageCreateParamsNonStreaming
KNOWN_FIELDS = set(PARAMS.__required_keys__ | PARAMS.__optional_keys__)
STREAM_PARAMS = pydantic.TypeAdapter(message_create_params.MessageCreateParamsStreaming)
EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


# =========================================================================== requests


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


FULL_REQUEST: dict[str, Any] = {
    "model": "claude-test",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "What is in these pictures?"},
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {"role": "assistant", "content": "Two cats. Let me check the weather."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "Thanks!"},
    ],
    "max_completion_tokens": 256,
    "max_tokens": 999,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": ["END"],
    "user": "user-123",
    "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "now"}}],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "stream": True,
    "stream_options": {"include_usage": True},
    "frequency_penalty": 0.5,
}

FULL_EXPECTED: dict[str, Any] = {
    "model": "claude-test",
    "system": [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in English."},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Two cats. Let me check the weather."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C and sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ],
    "max_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "user-123"},
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stream": True,
}


def test_full_request_translation():
    out = wire_request.request_to_anthropic(FULL_REQUEST, default_max_tokens=4096)
    assert out == FULL_EXPECTED


def test_translated_request_has_the_sdk_request_shape():
    out = wire_request.request_to_anthropic(FULL_REQUEST, default_max_tokens=4096)
    sampling = {"temperature", "top_p"}
    assert set(out) - sampling <= KNOWN_FIELDS
    STREAM_PARAMS.validate_python({k: v for k, v in out.items() if k not in sampling})
    assert request_problems_of(out) == []


def request_problems_of(body: dict[str, Any]) -> list[str]:
    from modelway.testing.fake_anthropic import request_problems

    return request_problems(body, KNOWN_FIELDS)


def test_simple_request_defaults():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    out = wire_request.request_to_anthropic(body, default_max_tokens=123)
    assert out == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 123}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 50}, {"max_tokens": 50}),
        ({"max_completion_tokens": 60, "max_tokens": 50}, {"max_tokens": 60}),
        ({"temperature": 1.7}, {"temperature": 1}),
        ({"temperature": 0}, {"temperature": 0}),
        ({"stop": "###"}, {"stop_sequences": ["###"]}),
        ({"safety_identifier": "hash-1"}, {"metadata": {"user_id": "hash-1"}}),
        ({"stream": True}, {"stream": True}),
        (  # an effort is also a thinking budget; max_tokens makes room for the answer
            {"reasoning_effort": "high"},
            {"output_config": {"effort": "high"}, "max_tokens": 16391,
             "thinking": {"type": "enabled", "budget_tokens": 16384}},
        ),
        ({"reasoning_effort": "none"}, {}),
        (
            {"thinking": {"type": "adaptive"}, "reasoning_effort": "low"},
            {"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}},
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {}},
                }
            },
            {"output_config": {"format": {"type": "json_schema", "schema": {}}}},
        ),
        ({"tool_choice": "auto", "logprobs": True, "seed": 3, "n": 1}, {}),
    ],
)
def test_request_fields(fields, expected):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    out = wire_request.request_to_anthropic(body, default_max_tokens=7)
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7}
    assert out == {**base, **expected}


def test_sampling_can_be_left_out():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.5}
    body["top_p"] = 0.5
    out = wire_request.request_to_anthropic(body, default_max_tokens=7, sampling=False)
    assert "temperature" not in out and "top_p" not in out


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "f"}},
            False,
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tool_choice(choice, parallel, expected):
    assert wire_request.tool_choice_to_anthropic(choice, parallel) == expected


def test_consecutive_turns_merge_and_tool_results_come_first():
    messages = [
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "tool_calls": [_call("t1")]},
        {"role": "user", "content": "typed before the result"},
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {"role": "assistant", "content": [{"type": "text", "text": "done"}]},
    ]
    system, out = wire_request.messages_to_anthropic(messages)
    assert system is None
    assert [m["role"] for m in out] == ["user", "assistant", "user", "assistant"]
    assert out[0]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert out[1]["content"] == [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]
    assert out[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1"},
        {"type": "text", "text": "typed before the result"},
    ]
    assert out[3]["content"] == "done"
    assert request_problems_of({"model": "m", "max_tokens": 1, "messages": out}) == []


def test_single_system_message_is_a_string_and_files_become_documents():
    system, out = wire_request.messages_to_anthropic(
        [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                    {"type": "text", "text": "Summarize."},
                ],
            },
        ]
    )
    assert system == "Be brief."
    document = {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}
    assert out[0]["content"][0] == {"type": "document", "source": document}


def _call(call_id: str, arguments: Any = "{}") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": arguments}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"messages": [{"role": "assistant", "tool_calls": [_call("t", "{oops")]}]}, "arguments"),
        ({"messages": [{"role": "assistant", "tool_calls": [_call("t", "[1]")]}]}, "arguments"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "x": 1}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        (
            {"messages": [{"role": "user", "content": [_image("ftp://x/y.png")]}]},
            "image_url.url",
        ),
        ({"messages": [{"role": "user", "content": [_image("data:image/png,abc")]}]}, "url"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"tools": [WEATHER_TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
    ],
)
def test_untranslatable_requests_are_400(fields, param):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    with pytest.raises(GatewayError) as caught:
        wire_request.request_to_anthropic(body, default_max_tokens=7)
    assert caught.value.status == 400
    assert caught.value.param is not None and param in caught.value.param


# =========================================================================== answers


def test_text_message_translation():
    out = wire_response.message_to_completion(TEXT_MESSAGE, created=CREATED)
    assert out == {
        "id": "msg_01T4jd6NyD9xGGtTPDC4ogy5",
        "object": "chat.completion",
        "created": CREATED,
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT_MESSAGE["content"][0]["text"]},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 406,
            "completion_tokens": 50,
            "total_tokens": 456,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def test_tool_use_message_translation():
    out = wire_response.message_to_completion(TOOL_USE_MESSAGE, created=CREATED)
    message = out["choices"][0]["message"]
    assert message["content"] == "I'll check the current weather in Paris for you."
    assert message["tool_calls"] == [
        {
            "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
        }
    ]
    assert out["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_only_answer_has_null_content():
    message = {**TOOL_USE_MESSAGE, "content": TOOL_USE_MESSAGE["content"][1:]}
    out = wire_response.message_to_completion(message, created=CREATED)
    assert out["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reasons(stop, finish):
    assert wire_response.finish_reason(stop) == finish
    out = wire_response.message_to_completion(
        {**TEXT_MESSAGE, "stop_reason": stop}, created=CREATED
    )
    assert out["choices"][0]["finish_reason"] == finish


def test_usage_counts_cache_tokens_as_prompt_tokens():
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "output_tokens": 4,
        "output_tokens_details": {"thinking_tokens": 2},
    }
    assert wire_response.usage_from_anthropic(usage) == {
        "cache_creation_input_tokens": 20,
        "prompt_tokens": 60,
        "completion_tokens": 4,
        "total_tokens": 64,
        "prompt_tokens_details": {"cached_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


def test_reverse_helpers_invert_the_forward_ones():
    for url in ("data:image/webp;base64,AAAA", "https://example.com/a.png"):
        part = wire_response.block_to_content_part(wire_request.image_block(url))
        assert part == {"type": "image_url", "image_url": {"url": url}}
    for stop in ("end_turn", "max_tokens", "tool_use", "refusal"):
        assert wire_response.stop_reason(wire_response.finish_reason(stop)) == stop
    for kind, status in wire_errors.ERROR_TYPE_STATUS.items():
        assert wire_errors.error_type_for_status(status) == kind
    usage = {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 30}
    assert wire_response.usage_to_anthropic(wire_response.usage_from_anthropic(usage)) == usage


# =========================================================================== streams


def decode(data: bytes, pieces: list[bytes] | None = None) -> list[dict[str, Any]]:
    decoder = AnthropicStreamDecoder(CREATED)
    chunks: list[dict[str, Any]] = []
    for piece in pieces if pieces is not None else [data]:
        chunks += decoder.feed(piece)
    return chunks + decoder.close()


def test_basic_stream_chunks():
    head = {
        "id": "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "claude-3-opus-latest",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    usage = {
        "prompt_tokens": 11,
        "completion_tokens": 6,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    start = {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12,
             "prompt_tokens_details": {"cached_tokens": 0}}
    assert decode(BASIC_STREAM) == [
        {**chunk({"role": "assistant"}), "usage": start},  # the prompt's tokens, known early
        chunk({"content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": " there"}),
        chunk({"content": "!"}),
        chunk({}, "stop"),
        {**head, "choices": [], "usage": usage},
    ]


def test_stream_decodes_the_same_for_every_split_point():
    whole = decode(BASIC_STREAM)
    for cut in range(1, len(BASIC_STREAM)):
        assert decode(BASIC_STREAM, [BASIC_STREAM[:cut], BASIC_STREAM[cut:]]) == whole, cut
    crlf = BASIC_STREAM.replace(b"\n", b"\r\n")
    assert decode(crlf, [crlf[i : i + 7] for i in range(0, len(crlf), 7)]) == whole


def test_tool_use_stream_deltas():
    chunks = decode(TOOL_USE_STREAM)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if _tool_delta(c)]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert [c["function"]["arguments"] for c in calls[1:]] == ['{"locati', 'on": "P', "ar", 'is"}']
    assert all(set(c) == {"index", "function"} for c in calls[1:])


def _tool_delta(chunk: dict[str, Any]) -> bool:
    return bool(chunk["choices"] and chunk["choices"][0]["delta"].get("tool_calls"))


def reassemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A stream's chunks (dicts) folded into what a non-streamed answer would say."""
    content: str | None = None
    calls: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {"finish_reason": None, "usage": None}
    for chunk in chunks:
        out["usage"] = chunk.get("usage") or out["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content") is not None:
                content = (content or "") + delta["content"]
            for call in delta.get("tool_calls") or []:
                _fold_call(calls.setdefault(call["index"], {}), call)
            out["finish_reason"] = choice.get("finish_reason") or out["finish_reason"]
    out["message"] = {"role": "assistant", "content": content}
    if calls:
        out["message"]["tool_calls"] = [calls[i] for i in sorted(calls)]
    return out


def _fold_call(into: dict[str, Any], call: dict[str, Any]) -> None:
    function = call.get("function") or {}
    if call.get("id"):
        into.update(id=call["id"], type=call.get("type") or "function")
        into["function"] = {"name": function.get("name"), "arguments": ""}
    into["function"]["arguments"] += function.get("arguments") or ""


def summary(completion: dict[str, Any]) -> dict[str, Any]:
    """What a non-streamed answer says, in `reassemble`'s shape."""
    choice = completion["choices"][0]
    given = choice["message"]
    message = {"role": given.get("role"), "content": given.get("content")}
    if given.get("tool_calls"):
        message["tool_calls"] = given["tool_calls"]
    return {
        "finish_reason": choice["finish_reason"],
        "usage": completion["usage"],
        "message": message,
    }


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (TOOL_USE_STREAM, TOOL_USE_MESSAGE),
        (b"".join(stream_bytes(TOOL_USE_MESSAGE)), TOOL_USE_MESSAGE),
    ],
)
def test_reassembled_stream_equals_the_non_streamed_answer(stream, message):
    streamed = reassemble(decode(stream))
    assert streamed == summary(wire_response.message_to_completion(message, created=CREATED))


def test_reassembled_generated_streams_equal_their_messages():
    for body in (_echo_body(), _tool_body(), _tool_result_body()):
        message = answer_for(body)
        streamed = reassemble(decode(b"".join(stream_bytes(message))))
        assert streamed == summary(wire_response.message_to_completion(message, created=CREATED))


def test_stream_usage_arriving_in_message_delta():
    chunks = decode(LATE_USAGE_STREAM)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "cache_creation_input_tokens": 3,
        "prompt_tokens": 19,
        "completion_tokens": 1,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 5},
    }


def test_refusal_stream_is_content_filter():
    chunks = decode(REFUSAL_STREAM)
    assert chunks[-2]["choices"][0]["finish_reason"] == "content_filter"
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 67}


def test_tool_without_input_deltas_gets_its_start_input():
    events = [
        {"type": "message_start", "message": {**TOOL_USE_MESSAGE, "content": []}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "now", "input": {}},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 2},
        },
    ]
    folded = reassemble(decode(b"".join(sse(e) for e in events)))
    assert folded["message"]["tool_calls"][0]["function"] == {"name": "now", "arguments": "{}"}
    assert folded["message"]["content"] is None
    assert folded["finish_reason"] == "tool_calls"


OVERLOADED_EVENT = b"event: error\ndata: " + json.dumps(OVERLOADED_ERROR).encode() + b"\n\n"
OVERLOADED_CHUNK = {
    "error": {"message": "Overloaded", "type": "overloaded_error", "code": None, "status": 529}
}


def test_translator_raises_on_an_error_event_with_its_status():
    translator = wire_stream.StreamTranslator(created=CREATED)
    with pytest.raises(GatewayError) as caught:
        translator.event(OVERLOADED_ERROR)
    assert (caught.value.status, caught.value.type) == (529, "overloaded_error")
    assert caught.value.message == "Overloaded"


def test_error_event_mid_stream_is_an_error_chunk_in_order():
    decoder = AnthropicStreamDecoder(CREATED)
    first = decoder.feed(BASIC_STREAM.split(b"event: content_block_stop")[0])
    assert [c["choices"][0]["delta"].get("content") for c in first][-1] == "!"
    assert decoder.feed(OVERLOADED_EVENT + b"event: ping\ndata: {}\n\n") == [OVERLOADED_CHUNK]
    assert decoder.feed(BASIC_STREAM) == []
    assert decoder.close() == []


def test_error_event_after_text_in_one_read_comes_after_the_text():
    head = BASIC_STREAM.split(b"event: content_block_stop")[0]
    chunks = AnthropicStreamDecoder(CREATED).feed(head + OVERLOADED_EVENT)
    assert chunks[-1] == OVERLOADED_CHUNK
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == "Hello there!"


def test_truncated_stream_ends_with_an_error_chunk():
    decoder = AnthropicStreamDecoder(CREATED)
    decoder.feed(BASIC_STREAM.split(b"event: message_delta")[0])
    assert decoder.close()[-1]["error"]["code"] == "upstream_stream_truncated"


def test_stream_event_that_is_not_json_is_an_error_chunk():
    chunks = decode(b"event: message_start\ndata: {not json\n\n")
    assert [c["error"]["code"] for c in chunks] == ["upstream_invalid_stream"]


# =========================================================================== errors


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (404, NOT_FOUND_ERROR, "not_found_error", "The requested resource could not be found."),
        (529, OVERLOADED_ERROR, "overloaded_error", "Overloaded"),
        (500, b"<html>oops</html>", "server_error", "the backend answered HTTP 500"),
        (400, {"error": "flat"}, "invalid_request_error", "the backend answered HTTP 400"),
    ],
)
def test_error_bodies(status, body, kind, message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    error = provider().parse_error(status, {}, raw)
    assert (error.status, error.type, error.message) == (status, kind, message)


def test_error_details_code_is_kept():
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "spend limit",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    error = provider().parse_error(429, {}, json.dumps(body).encode())
    assert (error.status, error.code) == (429, "enforced_spend_limit_reached")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_with_gateway_key_is_502_without_the_key(status):
    body = json.dumps(error_body_with_key()).encode()
    error = provider().parse_error(status, {}, body)
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert GATEWAY_KEY not in error.message and "sk-" not in error.message


def test_auth_failure_with_passthrough_keeps_401():
    error = provider(auth="passthrough", api_key=None).parse_error(
        401, {}, json.dumps(error_body_with_key()).encode()
    )
    assert (error.status, error.type) == (401, "authentication_error")


def error_body_with_key() -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"bad key {GATEWAY_KEY}"},
    }


# =========================================================================== provider


def provider(**fields: Any) -> AnthropicProvider:
    options = fields.pop("options", {})
    backend = BackendConfig(
        **{"provider": "anthropic", "api_key": GATEWAY_KEY, "model": "claude-x", **fields}
    )
    return AnthropicProvider(backend, AnthropicOptions(**options))


def context(client_key: str | None = "sk-client") -> RequestContext:
    return RequestContext(
        "r1", "POST", "/v1/chat/completions", "gw", {}, ClientInfo("1", "k", client_key)
    )


def canonical(**fields: Any) -> CanonicalRequest:
    body = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], **fields}
    return CanonicalRequest(Operation.CHAT, "claude-x", body, body.get("stream") is True)


def test_build_request_url_headers_and_body():
    wire_request = provider().build_request(context(), canonical(stream=True))
    assert (wire_request.method, wire_request.url) == (
        "POST",
        "https://api.anthropic.com/v1/messages",
    )
    assert wire_request.headers["x-api-key"] == GATEWAY_KEY
    assert wire_request.headers["anthropic-version"] == "2023-06-01"
    assert wire_request.headers["accept"] == "text/event-stream"
    assert "authorization" not in wire_request.headers
    body = json.loads(wire_request.body)
    assert body == {
        "model": "claude-x",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4096,
        "stream": True,
    }


def test_build_request_options():
    chosen = provider(
        base_url="http://proxy.local/anthropic/",
        headers={"x-extra": "1"},
        options={"version": "2099-01-01", "default_max_tokens": 9, "beta": ["a-1", "b-2"]},
    )
    wire_request = chosen.build_request(context(), canonical())
    assert wire_request.url == "http://proxy.local/anthropic/v1/messages"
    assert wire_request.headers["anthropic-version"] == "2099-01-01"
    assert wire_request.headers["anthropic-beta"] == "a-1,b-2"
    assert wire_request.headers["x-extra"] == "1"
    assert json.loads(wire_request.body)["max_tokens"] == 9


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        ({}, True),
        ({"version": "2026-10-21"}, False),
        ({"version": "2026-10-21", "sampling": True}, True),
        ({"sampling": False}, False),
    ],
)
def test_sampling_fields_follow_the_api_version(options, sent):
    chosen = provider(options=options)
    body = json.loads(chosen.build_request(context(), canonical(temperature=0.3, top_p=0.8)).body)
    assert ("temperature" in body, "top_p" in body) == (sent, sent)


def test_passthrough_sends_the_clients_key():
    wire_request = provider(auth="passthrough", api_key=None).build_request(context(), canonical())
    assert wire_request.headers["x-api-key"] == "sk-client"


def test_messages_url_does_not_double_v1():
    assert messages_url("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages"
    assert messages_url("http://h:1/v1/") == "http://h:1/v1/messages"


def test_options_are_validated():
    with pytest.raises(pydantic.ValidationError):
        AnthropicOptions(default_max_tokens=0)
    with pytest.raises(pydantic.ValidationError):
        AnthropicOptions(unknown=1)  # type: ignore[call-arg]


def test_garbled_answer_is_502():
    with pytest.raises(GatewayError) as caught:
        provider().parse_response(context(), canonical(), 200, b'{"choices": []}')
    assert (caught.value.status, caught.value.code) == (502, "upstream_invalid_response")


# =========================================================================== the fake upstream


def _echo_body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


def _tool_body() -> dict[str, Any]:
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    return _echo_body(tools=tools)


def _tool_result_body() -> dict[str, Any]:
    tool_use = {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}
    return _echo_body(
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [tool_use]},
            {"role": "user", "content": [result]},
        ]
    )


def test_fake_upstream_answers_validate_against_the_sdk_types():
    for body in (_echo_body(), _tool_body(), _tool_result_body()):
        message = answer_for(body)
        Message.model_validate(message)
        for event in stream_events(message):
            if event["type"] != "ping":  # a keep-alive, outside the SDK's event union
                EVENT.validate_python(event)
    Message.model_validate(TEXT_MESSAGE)
    Message.model_validate(TOOL_USE_MESSAGE)


def test_fake_upstream_with_the_official_anthropic_sdk():
    behavior = AnthropicMessages(KNOWN_FIELDS)
    with UpstreamServer(behavior) as server, anthropic.Anthropic(
        base_url=f"http://127.0.0.1:{server.port}", api_key=GATEWAY_KEY, max_retries=0
    ) as client:
        plain = client.messages.create(**_tool_body())
        with client.messages.stream(**_tool_body()) as stream:
            streamed = stream.get_final_message()
        behavior.reply = lambda body: Reply(
            headers={"content-type": "text/event-stream"}, chunks=[TOOL_USE_STREAM]
        )
        with client.messages.stream(**_tool_body()) as stream:
            fixture = stream.get_final_message()
    assert streamed.model_dump(exclude_none=True) == plain.model_dump(exclude_none=True)
    assert plain.content[1].type == "tool_use"
    dumped = fixture.model_dump(exclude_none=True)
    assert dumped["content"][0] == TOOL_USE_MESSAGE["content"][0]
    assert {k: dumped["content"][1][k] for k in ("id", "name", "input")} == {
        k: TOOL_USE_MESSAGE["content"][1][k] for k in ("id", "name", "input")
    }


def test_fake_upstream_rejects_what_the_api_rejects():
    behavior = AnthropicMessages(KNOWN_FIELDS)
    bad = [
        _echo_body(frequency_penalty=1),
        _echo_body(messages=[{"role": "assistant", "content": "x"}]),
        _echo_body(
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "tool_result", "tool_use_id": "t"},
                    ],
                },
            ]
        ),
        {k: v for k, v in _echo_body().items() if k != "max_tokens"},
    ]
    assert all(request_problems_of(body) for body in bad)
    assert behavior.known_fields == KNOWN_FIELDS


# =========================================================================== through the gateway


@pytest.fixture(scope="module")
def messages_api() -> Iterator[tuple[UpstreamServer, AnthropicMessages]]:
    behavior = AnthropicMessages(KNOWN_FIELDS, api_key=GATEWAY_KEY)
    with UpstreamServer(behavior) as server:
        yield server, behavior


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    messages_api: tuple[UpstreamServer, AnthropicMessages],
) -> Iterator[RunningGateway]:
    server, _ = messages_api
    base = f"http://127.0.0.1:{server.port}"

    def backend(**fields: Any) -> dict[str, Any]:
        return {"provider": "anthropic", "base_url": base, "model": "claude-upstream-1", **fields}

    config = {
        "plugins": ["anthropic"],
        "backends": {
            "claude": backend(api_key=GATEWAY_KEY),
            "wrongkey": backend(api_key=WRONG_KEY),
            "pass": backend(auth="passthrough"),
            "new": backend(api_key=GATEWAY_KEY, version="2026-10-21"),
        },
        "routes": [
            {"match": {"model": "claude-new"}, "backend": "new"},
            {"match": {"model": "claude-wrongkey"}, "backend": "wrongkey"},
            {"match": {"model": "claude-pass"}, "backend": "pass"},
            {"match": {"model": "claude-*"}, "backend": "claude"},
        ],
    }
    path = write_config(Path(tmp_path_factory.mktemp("anthropic")), json.dumps(config))
    with run_gateway(path) as gw:
        yield gw


@pytest.fixture
def up(messages_api: tuple[UpstreamServer, AnthropicMessages]) -> Iterator[AnthropicMessages]:
    server, behavior = messages_api
    server.received.clear()
    behavior.reply, behavior.problems = None, []
    yield behavior
    assert behavior.problems == [], "the gateway sent a request the Messages API rejects"


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return gateway.closing(
        openai.OpenAI(base_url=gateway.base_url, api_key="sk-client", max_retries=0)
    )


def last_received(messages_api: tuple[UpstreamServer, AnthropicMessages]) -> Any:
    return messages_api[0].last


CHAT = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "hello there"},
]


def test_chat_through_gateway(client, up, messages_api):
    answer = client.chat.completions.create(model="claude-test", messages=CHAT)
    assert answer.choices[0].message.content == "echo: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.id, answer.model) == ("msg_01XFDUDYJgAACzvnptvVoYEL", "claude-upstream-1")
    assert answer.usage is not None and answer.usage.prompt_tokens == 19
    assert answer.usage.completion_tokens == 3 and answer.usage.total_tokens == 22
    assert answer.usage.prompt_tokens_details.cached_tokens == 5
    received = last_received(messages_api)
    assert (received.method, received.path) == ("POST", "/v1/messages")
    assert received.headers["x-api-key"] == GATEWAY_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in received.headers
    assert received.json == {
        "model": "claude-upstream-1",
        "system": "You are a test.",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 4096,
    }


def sdk_reassemble(chunks: list[Any]) -> dict[str, Any]:
    return reassemble([chunk.model_dump(exclude_none=True) for chunk in chunks])


def sdk_summary(answer: Any) -> dict[str, Any]:
    return summary(answer.model_dump(exclude_none=True))


def test_stream_equals_non_streamed_answer(client, up, messages_api):
    plain = client.chat.completions.create(model="claude-test", messages=CHAT, max_tokens=50)
    chunks = list(
        client.chat.completions.create(
            model="claude-test",
            messages=CHAT,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert last_received(messages_api).json["stream"] is True
    assert last_received(messages_api).headers["accept"] == "text/event-stream"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["echo: ", "hello ", "there"]
    assert sdk_reassemble(chunks) == sdk_summary(plain)
    assert all(c.id == plain.id and c.model == plain.model for c in chunks)


def test_stream_without_usage_request_has_no_usage_chunk(client, up):
    chunks = list(client.chat.completions.create(model="claude-test", messages=CHAT, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(client, up, messages_api, stream):
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = ask(client, messages, stream, tools=[WEATHER_TOOL], tool_choice="auto")
    sent = last_received(messages_api).json
    assert sent["tools"][0]["name"] == "get_weather" and sent["tool_choice"] == {"type": "auto"}
    assert first["finish_reason"] == "tool_calls"
    call = first["message"]["tool_calls"][0]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {
        "location": "Paris, France",
        "unit": "celsius",
    }
    messages.append(first["message"])
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"})
    second = ask(client, messages, stream, tools=[WEATHER_TOOL])
    assert second["message"]["content"] == "The tool said: 18C and sunny"
    assert second["finish_reason"] == "stop"
    sent = last_received(messages_api).json
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look that up."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"location": "Paris, France", "unit": "celsius"},
            },
        ],
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
                "content": "18C and sunny",
            }
        ],
    }


def ask(
    client: openai.OpenAI, messages: list[dict[str, Any]], stream: bool, **kw: Any
) -> dict[str, Any]:
    """One chat turn, streamed or not, as {message, finish_reason, usage}."""
    if not stream:
        return sdk_summary(
            client.chat.completions.create(model="claude-test", messages=messages, **kw)
        )
    chunks = client.chat.completions.create(
        model="claude-test",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        **kw,
    )
    return sdk_reassemble(list(chunks))


def test_streamed_tool_call_equals_non_streamed(client, up):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    assert ask(client, messages, True, tools=[WEATHER_TOOL]) == ask(
        client, messages, False, tools=[WEATHER_TOOL]
    )


def test_rate_limit_keeps_status_and_retry_after(client, up):
    up.reply = lambda body: error_reply(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your rate limit",
        **{"retry-after": "7"},
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="claude-test", messages=CHAT)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["type"] == "rate_limit_error"
    assert "rate limit" in caught.value.message


def test_overloaded_keeps_529(client, up):
    up.reply = lambda body: Reply(status=529, body=json.dumps(OVERLOADED_ERROR).encode())
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="claude-test", messages=CHAT)
    assert caught.value.status_code == 529
    assert caught.value.body["type"] == "overloaded_error"


def test_rate_limit_on_a_stream_request(client, up):
    up.reply = lambda body: error_reply(
        429, "rate_limit_error", "slow down", **{"retry-after": "3"}
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="claude-test", messages=CHAT, stream=True)
    assert caught.value.response.headers["retry-after"] == "3"


def test_upstream_auth_failure_is_502_without_the_key(client, up):
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="claude-wrongkey", messages=CHAT)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert WRONG_KEY not in caught.value.response.text
    assert "x-api-key" not in caught.value.response.text


def test_passthrough_uses_the_clients_key(gateway, up, messages_api):
    ok = gateway.closing(
        openai.OpenAI(base_url=gateway.base_url, api_key=GATEWAY_KEY, max_retries=0)
    )
    assert ok.chat.completions.create(model="claude-pass", messages=CHAT).choices[0].message.content
    assert last_received(messages_api).headers["x-api-key"] == GATEWAY_KEY
    bad = gateway.closing(
        openai.OpenAI(base_url=gateway.base_url, api_key="sk-nope", max_retries=0)
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="claude-pass", messages=CHAT)
    assert caught.value.body["type"] == "authentication_error"


def test_error_event_mid_stream_reaches_the_client(client, up):
    message = answer_for(_echo_body(messages=[{"role": "user", "content": "one two three"}]))
    events = [*stream_bytes(message)[:3], sse(OVERLOADED_ERROR)]
    up.reply = lambda body: Reply(headers={"content-type": "text/event-stream"}, chunks=events)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(
            model="claude-test", messages=CHAT, stream=True
        ):
            seen += [chunk.choices[0].delta.content or ""] if chunk.choices else []
    assert "".join(seen) == "echo: "
    assert "Overloaded" in caught.value.message


def test_stream_cut_short_ends_with_an_error(client, up):
    message = answer_for(_echo_body())
    events = stream_bytes(message)[:5]
    up.reply = lambda body: Reply(headers={"content-type": "text/event-stream"}, chunks=events)
    with pytest.raises(openai.APIError) as caught:
        list(client.chat.completions.create(model="claude-test", messages=CHAT, stream=True))
    assert "ended before it was complete" in caught.value.message


def test_untranslatable_request_is_400_from_the_gateway(client, up, messages_api):
    count = len(messages_api[0].received)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude-test", messages=CHAT, n=2)
    assert caught.value.body["param"] == "n"
    assert len(messages_api[0].received) == count


def test_image_request_through_gateway(client, up, messages_api):
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    answer = client.chat.completions.create(
        model="claude-test", messages=[{"role": "user", "content": content}]
    )
    assert answer.choices[0].message.content == "echo: what is this"
    blocks = last_received(messages_api).json["messages"][0]["content"]
    assert [b["source"]["type"] for b in blocks[1:]] == ["base64", "url"]
    assert blocks[1]["source"]["media_type"] == "image/jpeg"


def test_sampling_is_sent_with_2023_06_01_and_left_out_with_2026_10_21(client, up, messages_api):
    client.chat.completions.create(model="claude-test", messages=CHAT, temperature=1.5, top_p=0.5)
    received = last_received(messages_api)
    assert (received.json["temperature"], received.json["top_p"]) == (1, 0.5)
    answer = client.chat.completions.create(
        model="claude-new", messages=CHAT, temperature=1.5, top_p=0.5
    )
    assert answer.choices[0].message.content == "echo: hello there"
    received = last_received(messages_api)
    assert received.headers["anthropic-version"] == "2026-10-21"
    assert "temperature" not in received.json and "top_p" not in received.json
