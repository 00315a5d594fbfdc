"""A backend that speaks only the Responses API (`api: responses`): hub chat requests out,
Responses answers and streams back, and the OpenAI reasoning blob carried across turns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import response_create_params
from pydantic import TypeAdapter

from modelway.errors import GatewayError
from modelway.hubstream import error_from_chunk
from modelway.plugins.ingress.responses.stream import ResponsesStreamEncoder
from modelway.plugins.providers.responses.request import REASONING_ITEMS, to_responses_request
from modelway.plugins.providers.responses.response import from_response
from modelway.plugins.providers.responses.stream import ResponsesStreamDecoder
from tests.responses_fixtures import USAGE, assemble, call_delta, chunk, sdk_response, usage_chunk

Json = dict[str, Any]
CREATE = TypeAdapter(response_create_params.ResponseCreateParamsStreaming)
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False}}}
BLOB = "gAAAAABpZ3Jlb3J5LXJlYXNvbmluZy1ibG9i"
CHAT = {
    "model": "gpt-5-pro",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image, and the weather?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
    ],
    "tools": [WEATHER],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "reasoning_effort": "high",
    "max_completion_tokens": 2000,
    "temperature": 1,
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True, "schema": {"type": "object"}}},
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "u-1",
}


def response_object(output: list[Json], **extra: Any) -> Json:
    """A Responses answer as OpenAI gives it (checked against the SDK's model)."""
    body = {
        "id": "resp_68af", "object": "response", "created_at": 1756000000, "status": "completed",
        "model": "gpt-5-pro-2025-10-06", "output": output, "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None,
        "usage": {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100,
                                                                "cache_write_tokens": 12},
                  "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 25},
                  "total_tokens": 160},
    }
    body.update(extra)
    sdk_response(body)
    return body


REASONING = {"id": "rs_1", "type": "reasoning", "encrypted_content": BLOB,
             "summary": [{"type": "summary_text", "text": "**Plan**"},
                         {"type": "summary_text", "text": "Call the tool."}]}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]}
CALL = {"id": "fc_1", "type": "function_call", "call_id": "call_9", "name": "get_weather",
        "arguments": '{"city": "Paris"}', "status": "completed"}


# ------------------------------------------------------------------------------ requests


def test_chat_request_as_a_responses_create_body():
    body = to_responses_request(CHAT)
    CREATE.validate_python(body)
    assert body["input"] == [
        {"type": "message", "role": "system", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is in this image, and the weather?"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]},
    ]
    assert body["tools"] == [{"type": "function", "name": "get_weather",
                              "description": "Weather for a city.", "strict": True,
                              "parameters": WEATHER["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert (body["store"], body["stream"], body["max_output_tokens"]) == (False, True, 2000)
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["text"] == {"format": {"type": "json_schema", "name": "answer", "strict": True,
                                       "schema": {"type": "object"}}}
    assert (body["parallel_tool_calls"], body["temperature"], body["user"]) == (False, 1, "u-1")
    assert "stream_options" not in body and "messages" not in body


def test_no_reasoning_asked_means_none_included():
    body = to_responses_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert body == {"model": "m", "input": [{"type": "message", "role": "user",
                                             "content": "hi"}], "store": False}
    thinking = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "thinking": {"type": "enabled", "budget_tokens": 8000}}
    assert to_responses_request(thinking)["reasoning"]["effort"] == "medium"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"stop": ["\n"]}, "stop"), ({"n": 2}, "n"), ({"audio": {"voice": "x"}}, "audio"),
     ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
     ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
      "messages[0].content[0].type"),
     ({"tools": [{"type": "retrieval"}]}, "tools[0]")],
)
def test_what_the_responses_api_cannot_take_is_a_400_naming_it(extra, param):
    with pytest.raises(GatewayError) as caught:
        to_responses_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                              **extra})
    assert (caught.value.status, caught.value.param) == (400, param)


# ------------------------------------------------------------------------------ answers


def test_responses_answer_as_a_chat_completion():
    completion = from_response(response_object([REASONING, MESSAGE, CALL]))
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant", "content": "Checking.",
        "reasoning_content": "**Plan**\n\nCall the tool.",
        REASONING_ITEMS: [{"id": "rs_1", "encrypted_content": BLOB}],
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
    }
    assert completion["usage"] == {**USAGE}
    assert (completion["model"], completion["object"]) == ("gpt-5-pro-2025-10-06",
                                                           "chat.completion")


def test_incomplete_and_failed_answers():
    cut = from_response(response_object([MESSAGE], status="incomplete",
                                        incomplete_details={"reason": "max_output_tokens"}))
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["choices"][0]["native_finish_reason"] == "max_output_tokens"
    failed = response_object([], status="failed",
                             error={"code": "rate_limit_exceeded", "message": "slow down"})
    with pytest.raises(GatewayError) as caught:
        from_response(failed)
    assert (caught.value.status, caught.value.code) == (429, "rate_limit_exceeded")
    with pytest.raises(GatewayError):
        from_response({"object": "response"})


def test_reverse_round_trip_keeps_the_reasoning_blob_for_the_next_turn():
    first = from_response(response_object([REASONING, CALL]))
    turn = {**CHAT, "messages": [*CHAT["messages"], first["choices"][0]["message"],
                                 {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}]}
    body = to_responses_request(turn)
    CREATE.validate_python(body)
    assert body["input"][2:] == [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": BLOB},
        {"type": "function_call", "call_id": "call_9", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_9", "output": "sunny"},
    ]


# ------------------------------------------------------------------------------ streams

HUB_ANSWER = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "Plan."}), chunk({"content": "Check"}),
    chunk({"content": "ing."}),
    chunk(call_delta(0, id_="call_9", name="get_weather")),
    chunk(call_delta(0, arguments='{"city": ')), chunk(call_delta(0, arguments='"Paris"}')),
    chunk(call_delta(1, id_="call_10", name="get_weather", arguments='{"city": "Rome"}')),
    chunk({}, "tool_calls"), usage_chunk(USAGE),
]
REQUEST = {"model": "gpt-5-pro", "input": "weather?",
           "tools": [{"type": "function", "name": "get_weather"}]}


def responses_stream(chunks: list[Json]) -> bytes:
    """A Responses event stream, as the gateway's own encoder writes one (SDK-checked)."""
    encoder = ResponsesStreamEncoder(REQUEST, "resp_68af", 1756000000)
    return encoder.start() + b"".join(encoder.encode(c) for c in chunks) + encoder.end()


def decode(data: bytes, splits: list[int] | None = None) -> list[Json]:
    decoder = ResponsesStreamDecoder()
    out, start = [], 0
    for end in [*sorted(splits or []), len(data)]:
        out += decoder.feed(data[start:end])
        start = max(start, end)
    return out + decoder.close()


def test_stream_round_trip_hub_to_responses_and_back():
    chunks = decode(responses_stream(HUB_ANSWER))
    assert all("error" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["id"] == "resp_68af" and chunks[0]["model"] == "gpt-5-pro"
    back, original = assemble(chunks), assemble(HUB_ANSWER)
    assert back["choices"][0]["message"] == original["choices"][0]["message"]
    assert back["choices"][0]["finish_reason"] == "tool_calls"
    assert back["usage"] == USAGE
    indexes = [c["choices"][0]["delta"]["tool_calls"][0]["index"] for c in chunks
               if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert indexes == [0, 0, 0, 1, 1]


def test_openai_reasoning_stream_gives_summary_text_and_the_blob():
    events = [
        {"type": "response.created", "sequence_number": 0,
         "response": response_object([], status="in_progress", usage=None)},
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
         "item": {"id": "rs_1", "type": "reasoning", "summary": []}},
        *[{"type": "response.reasoning_summary_text.delta", "sequence_number": 2 + i,
           "item_id": "rs_1", "output_index": 0, "summary_index": i, "delta": text}
          for i, text in enumerate(["**Plan**", "Call the tool."])],
        {"type": "response.output_item.done", "sequence_number": 4, "output_index": 0,
         "item": REASONING},
        {"type": "response.completed", "sequence_number": 5,
         "response": response_object([REASONING, MESSAGE])},
    ]
    data = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    chunks = decode(data)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "**Plan**\n\nCall the tool."
    assert {"reasoning_item": {"id": "rs_1", "encrypted_content": BLOB}} in deltas
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 100}


@settings(max_examples=60, deadline=None)
@given(splits=st.lists(st.integers(min_value=0, max_value=6000), max_size=8))
def test_any_split_of_the_stream_gives_the_same_chunks(splits):
    data = responses_stream(HUB_ANSWER)
    assert decode(data, [s % (len(data) + 1) for s in splits]) == decode(data)


def test_failures_are_in_order_error_chunks():
    head = responses_stream(HUB_ANSWER[:4]).split(b"event: response.completed")[0]
    failed = {"type": "response.failed", "sequence_number": 99, "response": response_object(
        [], status="failed", error={"code": "server_error", "message": "overloaded"})}
    chunks = decode(head + f"data: {json.dumps(failed)}\n\n".encode())
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == "Checking."
    error = error_from_chunk(chunks[-1])
    assert (error.status, error.code, error.message) == (502, "server_error", "overloaded")
    event = {"type": "error", "sequence_number": 3, "code": "rate_limit_exceeded",
             "message": "Rate limit reached", "param": None}
    error = error_from_chunk(decode(head + f"data: {json.dumps(event)}\n\n".encode())[-1])
    assert (error.status, error.code) == (429, "rate_limit_exceeded")


def test_a_stream_that_stops_early_is_truncated():
    head = responses_stream(HUB_ANSWER).split(b"event: response.completed")[0]
    last = decode(head)[-1]
    assert last["error"]["code"] == "upstream_stream_truncated"
    assert decode(b"data: {not json\n\n")[-1]["error"]["code"] == "upstream_invalid_stream"
