"""The Responses API served for any backend: answers, streams and the mw1 reasoning round trip.

Hub answers (`chat.completion` and its chunks, as every provider produces them) go through
`to_response` and `ResponsesStreamEncoder`; every object and event must validate with the
installed `openai` SDK's models, and their content is compared: exact event orders, the
streamed answer equal to the non-streamed one, usage, and thinking blocks (signatures
included) coming back intact when the client sends the reasoning item back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelway.errors import GatewayError
from modelway.plugins.ingress.responses import mw1
from modelway.plugins.ingress.responses.request import to_chat_request
from modelway.plugins.ingress.responses.response import to_response
from modelway.plugins.ingress.responses.stream import ResponsesStreamEncoder
from tests.responses_fixtures import (
    USAGE,
    WEATHER,
    agents_request,
    assemble,
    call_delta,
    chunk,
    codex_request,
    kinds,
    sdk_response,
    sse_events,
    usage_chunk,
)

Json = dict[str, Any]
RID = "resp_0a1b2c"
SIG1, SIG2 = "EqQBCkYIARgCKkD" + "a" * 40, "EpYCCkYIBRgCKkB" + "b" * 40
REQUEST = agents_request([{"role": "user", "content": "weather in Paris and Rome?"}],
                         reasoning={"effort": "low", "summary": "auto"}, temperature=0.3)


def stream(chunks: list[Json], request: Json = REQUEST) -> list[Json]:
    encoder = ResponsesStreamEncoder(request, RID, 1700000000)
    data = encoder.start() + b"".join(encoder.encode(c) for c in chunks) + encoder.end()
    return sse_events(data)


def answer(chunks: list[Json], request: Json = REQUEST) -> Json:
    return to_response(assemble(chunks), request=request, response_id=RID,
                       created_at=1700000000)


TEXT = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}),
        chunk({"content": "lo."}), chunk({}, "stop"), usage_chunk(USAGE)]
THINKING = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "The user wants "}), chunk({"reasoning_content": "weather."}),
    chunk({"reasoning_signature": SIG1}),
    chunk({"reasoning_content": "Two cities."}), chunk({"reasoning_signature": SIG2}),
    chunk({"redacted_reasoning": "EmwKAhgBEgy3va"}),
    chunk({"content": "Checking."}), chunk({}, "stop"), usage_chunk(USAGE),
]
PARALLEL = [
    chunk({"role": "assistant", "content": ""}),
    chunk(call_delta(0, id_="toolu_01", name="get_weather")),
    chunk(call_delta(0, arguments='{"city":')), chunk(call_delta(0, arguments=' "Paris"}')),
    chunk(call_delta(1, id_="toolu_02", name="get_weather")),
    chunk(call_delta(1, arguments='{"city": "Rome"}')),
    chunk({}, "tool_calls"), usage_chunk(USAGE),
]
TRUNCATED = [chunk({"content": "Once upon a"}), chunk({}, "length")]
REFUSAL = [chunk({"refusal": "I can't help with that."}), chunk({}, "stop")]

# ------------------------------------------------------------------------- to_response


def test_text_answer_is_a_completed_response_with_the_request_echoed():
    response = answer(TEXT)
    sdk = sdk_response(response)
    assert sdk.output_text == "Hello."
    assert response["status"] == "completed" and response["incomplete_details"] is None
    message = response["output"][0]
    assert message["id"] == "msg_0a1b2c_0" and message["role"] == "assistant"
    assert message["content"] == [{"type": "output_text", "text": "Hello.", "annotations": [],
                                   "logprobs": []}]
    assert (response["id"], response["object"], response["model"]) == (RID, "response", "gpt-4o")
    assert response["instructions"] == "Use the tool." and response["tools"] == [WEATHER]
    assert response["temperature"] == 0.3 and response["top_p"] == 1.0
    assert response["reasoning"] == {"effort": "low", "summary": "auto"}
    assert (response["store"], response["tool_choice"], response["parallel_tool_calls"]) == (
        True, "auto", True)
    assert response["text"] == {"format": {"type": "text"}, "verbosity": "medium"}


def test_usage_keeps_cache_reads_cache_writes_and_reasoning_apart():
    usage = sdk_response(answer(TEXT)).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (120, 40, 160)
    assert usage.input_tokens_details.cached_tokens == 100
    assert usage.input_tokens_details.cache_write_tokens == 12
    assert usage.output_tokens_details.reasoning_tokens == 25


def test_reasoning_then_text_then_tool_calls_are_items_in_the_api_order():
    completion = assemble(THINKING[:-2] + PARALLEL[1:])
    response = to_response(completion, request=REQUEST, response_id=RID, created_at=1)
    sdk_response(response)
    assert [i["type"] for i in response["output"]] == [
        "reasoning", "message", "function_call", "function_call"]
    assert [i["id"] for i in response["output"]] == [
        "rs_0a1b2c_0", "msg_0a1b2c_1", "fc_0a1b2c_2", "fc_0a1b2c_3"]
    reasoning = response["output"][0]
    assert [s["text"] for s in reasoning["summary"]] == ["The user wants weather.", "Two cities."]
    assert mw1.decode(reasoning["encrypted_content"]) == completion["choices"][0]["message"][
        "thinking_blocks"]
    calls = response["output"][2:]
    assert [(c["call_id"], c["name"], c["arguments"], c["status"]) for c in calls] == [
        ("toolu_01", "get_weather", '{"city": "Paris"}', "completed"),
        ("toolu_02", "get_weather", '{"city": "Rome"}', "completed"),
    ]


def test_reasoning_text_without_signatures_is_a_summary_with_nothing_to_send_back():
    completion = assemble([chunk({"reasoning_content": "hmm"}), *TEXT])
    reasoning = to_response(completion, request=REQUEST, response_id=RID, created_at=1)[
        "output"][0]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert reasoning["encrypted_content"] is None


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_cut_off_answer_is_incomplete_with_the_reason(finish, reason):
    response = answer([chunk({"content": "Once upon a"}), chunk({}, finish)])
    sdk_response(response)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": reason}
    assert response["output"][-1]["status"] == "incomplete"


def test_refusal_is_a_refusal_part():
    response = answer(REFUSAL)
    sdk_response(response)
    assert response["output"][0]["content"] == [
        {"type": "refusal", "refusal": "I can't help with that."}]


def test_calls_of_custom_namespaced_and_search_tools_become_their_own_items():
    request = codex_request([])
    calls = [
        {"id": "c1", "type": "function",
         "function": {"name": "apply_patch", "arguments": json.dumps({"input": "*** Begin"})}},
        {"id": "c2", "type": "function",
         "function": {"name": "multi_agent_v1__close_agent", "arguments": '{"target": "a1"}'}},
        {"id": "c3", "type": "function",
         "function": {"name": "tool_search", "arguments": '{"query": "calendar"}'}},
    ]
    completion = {"choices": [{"index": 0, "finish_reason": "tool_calls",
                               "message": {"role": "assistant", "tool_calls": calls}}]}
    output = to_response(completion, request=request, response_id=RID, created_at=1)["output"]
    sdk_response(to_response(completion, request=request, response_id=RID, created_at=1))
    assert output[0] == {"id": "ctc_0a1b2c_0", "type": "custom_tool_call", "call_id": "c1",
                         "name": "apply_patch", "input": "*** Begin"}
    assert (output[1]["name"], output[1]["namespace"]) == ("close_agent", "multi_agent_v1")
    assert output[2]["type"] == "tool_search_call"
    assert output[2]["arguments"] == {"query": "calendar"}


def test_an_empty_answer_is_one_empty_message():
    response = answer([chunk({}, "stop")])
    assert [i["type"] for i in response["output"]] == ["message"]
    assert sdk_response(response).output_text == ""


# ------------------------------------------------------------------------------ streams


def test_text_stream_exact_event_order():
    events = stream(TEXT)
    assert kinds(events) == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["delta"] for e in events if e["type"].endswith("text.delta")] == ["Hel", "lo."]
    done = events[6]
    assert (done["text"], done["item_id"], done["output_index"], done["content_index"]) == (
        "Hello.", "msg_0a1b2c_0", 0, 0)


def test_reasoning_stream_exact_event_order():
    events = stream(THINKING)
    summary = [
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
        "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
    ]
    assert kinds(events) == [
        "response.created", "response.in_progress", "response.output_item.added", *summary,
        "response.output_item.done", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]
    parts = [e for e in events if e["type"] == "response.reasoning_summary_part.done"]
    assert [(p["summary_index"], p["part"]["text"]) for p in parts] == [
        (0, "The user wants weather."), (1, "Two cities.")]
    reasoning = events[12]["item"]
    assert mw1.decode(reasoning["encrypted_content"]) == [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": SIG1},
        {"type": "thinking", "thinking": "Two cities.", "signature": SIG2},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"},
    ]


def test_parallel_tool_call_stream_exact_event_order():
    events = stream(PARALLEL)
    call = ["response.output_item.added", "response.function_call_arguments.delta"]
    assert kinds(events) == [
        "response.created", "response.in_progress",
        *call, "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        *call, "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["call_id"], e["item"]["arguments"],
             e["item"]["status"]) for e in added] == [
        (0, "toolu_01", "", "in_progress"), (1, "toolu_02", "", "in_progress")]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["item_id"], e["arguments"]) for e in done] == [
        ("fc_0a1b2c_0", '{"city": "Paris"}'), ("fc_0a1b2c_1", '{"city": "Rome"}')]


@pytest.mark.parametrize(
    "chunks",
    [TEXT, THINKING, PARALLEL, THINKING[:-2] + PARALLEL[1:], TRUNCATED, REFUSAL,
     [chunk({}, "stop")], [chunk({"reasoning_content": "unsigned"}), *TEXT]],
    ids=["text", "thinking", "parallel", "thinking-tools", "truncated", "refusal", "empty",
         "unsigned-reasoning"],
)
def test_the_streamed_response_equals_the_non_streamed_one(chunks):
    events = stream(chunks)
    final = events[-1]["response"]
    expected = answer(chunks)
    sdk_response(final)
    assert final["output"] == expected["output"]
    assert final["usage"] == expected["usage"]
    assert (final["status"], final["incomplete_details"]) == (
        expected["status"], expected["incomplete_details"])
    items = {e["output_index"]: e["item"] for e in events
             if e["type"] == "response.output_item.done"}
    assert [items[i] for i in sorted(items)] == final["output"]


def test_every_event_names_an_item_that_was_added():
    events = stream(THINKING[:-2] + PARALLEL[1:])
    added = {e["item"]["id"]: e["output_index"] for e in events
             if e["type"] == "response.output_item.added"}
    for event in events:
        if "item_id" in event:
            assert added[event["item_id"]] == event["output_index"]


def test_start_is_sent_before_any_chunk_and_says_in_progress():
    encoder = ResponsesStreamEncoder(REQUEST, RID, 1700000000)
    events = sse_events(encoder.start())
    assert kinds(events) == ["response.created", "response.in_progress"]
    for event in events:
        assert event["response"]["status"] == "in_progress" and event["response"]["output"] == []
    assert encoder.content_type == "text/event-stream"


def test_truncated_stream_marks_the_open_message_incomplete():
    events = stream(TRUNCATED)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"


def test_a_failure_is_an_error_event_then_response_failed():
    encoder = ResponsesStreamEncoder(REQUEST, RID, 1)
    data = encoder.start() + encoder.encode(chunk({"content": "Hel"}))
    data += encoder.error(GatewayError(429, "slow down", "rate_limit_error", "rate_limited"))
    assert encoder.end() == b""
    events = sse_events(data)
    assert kinds(events)[-2:] == ["error", "response.failed"]
    assert (events[-2]["code"], events[-2]["message"]) == ("rate_limited", "slow down")
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert failed["output"][0]["content"][0]["text"] == "Hel"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_sse_framing_is_event_then_data():
    data = ResponsesStreamEncoder(REQUEST, RID, 1).start()
    first = data.split(b"\n\n")[0].split(b"\n")
    assert first[0] == b"event: response.created" and first[1].startswith(b"data: {")


# ------------------------------------------------------------------- mw1 round trips


def test_mw1_round_trip_through_a_client_that_sends_the_output_back():
    """Codex with a Claude backend: the reasoning item comes back in the next request."""
    first = answer(THINKING[:-2] + PARALLEL[1:])
    blocks = assemble(THINKING[:-2] + PARALLEL[1:])["choices"][0]["message"]["thinking_blocks"]
    outputs = [{"type": "function_call_output", "call_id": c["call_id"], "output": "sunny"}
               for c in first["output"][2:]]
    sent_back = [{**item, "content": None} if item["type"] == "reasoning" else item
                 for item in first["output"]]  # Codex adds "content": null
    body = codex_request([*sent_back, *outputs])
    chat = to_chat_request(body, [])
    assistant = [m for m in chat["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1
    assert assistant[0]["thinking_blocks"] == blocks
    assert [b.get("signature") for b in assistant[0]["thinking_blocks"]] == [SIG1, SIG2, None]
    assert assistant[0]["content"] == "Checking."
    assert [c["id"] for c in assistant[0]["tool_calls"]] == ["toolu_01", "toolu_02"]
    assert [m["role"] for m in chat["messages"][-2:]] == ["tool", "tool"]


def test_mw1_round_trip_from_a_stream_through_previous_response_id():
    """Agents SDK with store: the gateway resolves the history; the stream's items count."""
    events = stream(THINKING[:-2] + PARALLEL[1:])
    output = events[-1]["response"]["output"]
    history = [*REQUEST["input"], *output]
    body = agents_request([{"type": "function_call_output", "call_id": "toolu_01",
                            "output": "sunny"},
                           {"type": "function_call_output", "call_id": "toolu_02",
                            "output": "rainy"}], previous_response_id=RID)
    chat = to_chat_request(body, history)
    assistant = chat["messages"][2]
    assert [b.get("signature") for b in assistant["thinking_blocks"]] == [SIG1, SIG2, None]
    assert assistant["reasoning_content"] == "The user wants weather.Two cities."
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "tool"]


def test_mw1_encoding_is_prefixed_base64url_json():
    blocks = [{"type": "thinking", "thinking": "é", "signature": "s/+"}]
    value = mw1.encode(blocks)
    assert value.startswith("mw1:") and set(value[4:]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert mw1.decode(value) == blocks
    assert mw1.decode(value + "==") == blocks
    assert mw1.decode("gAAAAAB-ENC-8098bc91") is None
    assert mw1.decode("mw1:!!not base64") is None
    assert mw1.decode(mw1.encode([{"type": "thinking", "thinking": 1}])) == []


# ---------------------------------------------------------------- any order of deltas

DELTA = st.one_of(
    st.builds(lambda t: {"reasoning_content": t}, st.text(min_size=1, max_size=4)),
    st.just({"reasoning_signature": SIG1}),
    st.just({"redacted_reasoning": "EmwK"}),
    st.builds(lambda t: {"content": t}, st.text(max_size=4)),
    st.builds(lambda t: {"refusal": t}, st.text(min_size=1, max_size=4)),
    st.builds(lambda i, a: call_delta(i, id_=f"call_{i}", name="get_weather", arguments=a),
              st.integers(0, 2), st.text(max_size=4)),
    st.builds(lambda i, a: call_delta(i, arguments=a), st.integers(0, 2), st.text(max_size=4)),
)


@settings(max_examples=150, deadline=None)
@given(deltas=st.lists(DELTA, max_size=12),
       finish=st.sampled_from(["stop", "length", "tool_calls", "content_filter", None]))
def test_any_order_of_hub_deltas_gives_a_valid_consistent_stream(deltas, finish):
    events = stream([chunk(d) for d in deltas] + [chunk({}, finish), usage_chunk(USAGE)])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    sdk_response(final)
    done = {e["output_index"]: e["item"] for e in events
            if e["type"] == "response.output_item.done"}
    assert [done[i] for i in sorted(done)] == final["output"]
    opened = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    assert opened == sorted(done) == list(range(len(final["output"])))
