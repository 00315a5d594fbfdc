"""`POST /v1/responses` bodies as hub chat requests: what Codex and the Agents SDK send, every
item and part type, tools and settings, and a 4xx with a JSON path for every malformed body.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseFunctionToolCallParam,
    ResponseInputTextParam,
    ResponseItem,
    response_create_params,
)
from pydantic import TypeAdapter

from modelway.errors import GatewayError
from modelway.plugins.ingress.responses import mw1
from modelway.plugins.ingress.responses.request import input_items, to_chat_request
from tests.responses_fixtures import LARK, WEATHER, agents_request, codex_request, codex_tools

Json = dict[str, Any]
CREATE = TypeAdapter(response_create_params.ResponseCreateParamsNonStreaming)


def chat(body: Json, history: list[Json] | None = None, **options: Any) -> Json:
    return to_chat_request(body, history or [], **options)


def sdk_checked(body: Json) -> Json:
    """A body the SDK's own request type accepts (Codex's replicas are not all: it sends
    `"content": null` on reasoning items, which the API takes but the SDK's types do not)."""
    CREATE.validate_python(body)
    return body


def names(body: Json) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


# ------------------------------------------------------------------------------- Codex


def test_codex_first_turn():
    body = chat(codex_request([]))
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("developer", "You are a coding agent."),
        ("developer", [{"type": "text", "text": "<skills_instructions/>"},
                       {"type": "text", "text": "<permissions instructions/>"}]),
        ("user", "<environment_context/>"), ("user", "say hi")]
    assert names(body) == ["exec_command", "multi_agent_v1__close_agent", "apply_patch",
                           "tool_search"]
    assert body["tools"][0]["function"]["strict"] is False
    patch = body["tools"][2]["function"]
    assert patch["parameters"]["required"] == ["input"] and LARK in patch["description"]
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("auto", True)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["reasoning_effort"] == "medium"
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["verbosity"] == "low"
    assert body["prompt_cache_key"] == "01a2356b-6a60-7681-a4d2-c76ea686f859"
    assert not {"store", "include", "client_metadata", "input"} & set(body)


def test_codex_always_sends_web_search_which_a_translated_backend_leaves_out():
    assert chat(codex_request([])) == chat(codex_request([]), builtin_tools="drop")
    forced = codex_request([], tool_choice={"type": "web_search"})
    with pytest.raises(GatewayError) as caught:
        chat(forced)
    assert (caught.value.param, caught.value.code) == ("tool_choice.type", "unsupported_tool")


@pytest.mark.parametrize("kind", ["file_search", "code_interpreter", "computer_use_preview",
                                  "image_generation", "mcp", "local_shell"])
def test_other_built_in_tools_are_a_400_naming_the_tool(kind):
    body = codex_request([], tools=[*codex_tools(), {"type": kind}])
    with pytest.raises(GatewayError) as caught:
        chat(body)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, "tools[5].type", "unsupported_tool")
    assert f"'{kind}'" in error.message and "cannot run it" in error.message
    assert names(chat(body, builtin_tools="drop")) == names(chat(codex_request([])))


def test_codex_tool_turn_with_openai_reasoning():
    """OpenAI's own encrypted reasoning means nothing to another backend: dropped."""
    turn = [
        {"type": "reasoning", "id": "rs_459a", "content": None,
         "summary": [{"type": "summary_text", "text": "**Greeting**"}],
         "encrypted_content": "gAAAAAB-ENC-c036"},
        {"type": "function_call", "status": "completed", "id": "fc_e4f0", "name": "exec_command",
         "arguments": '{"cmd": "echo ok"}', "call_id": "call_3230"},
        {"type": "function_call_output", "id": "fco_01a2", "call_id": "call_3230",
         "output": "Process exited with code 0\nOutput:\nok\n"},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_p", "name": "apply_patch",
         "input": "*** Begin Patch\n*** End Patch\n"},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_a", "name": "close_agent",
         "namespace": "multi_agent_v1", "arguments": '{"target": "a1"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "closed"},
    ]
    messages = chat(codex_request(turn))["messages"][4:]
    assert messages[0] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_3230", "type": "function",
         "function": {"name": "exec_command", "arguments": '{"cmd": "echo ok"}'}}]}
    assert messages[1] == {"role": "tool", "tool_call_id": "call_3230",
                           "content": "Process exited with code 0\nOutput:\nok\n"}
    patch = messages[2]["tool_calls"][0]["function"]
    assert json.loads(patch["arguments"]) == {"input": "*** Begin Patch\n*** End Patch\n"}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_p", "content": "Done!"}
    assert messages[4]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__close_agent"


def test_codex_additional_tools_and_tool_search_output_add_tools():
    extra = {"type": "function", "name": "list_events", "parameters": {"type": "object"}}
    turn = [
        {"type": "additional_tools", "id": "at_1", "role": "developer",
         "tools": [{"type": "namespace", "name": "clock", "description": "",
                    "tools": [{"type": "function", "name": "sleep"}]}]},
        {"type": "tool_search_call", "id": "ts_1", "call_id": "call_s", "execution": "client",
         "arguments": {"query": "calendar"}, "status": "completed"},
        {"type": "tool_search_output", "id": "tso_1", "call_id": "call_s", "execution": "client",
         "status": "completed", "tools": [extra]},
    ]
    body = chat(codex_request(turn))
    assert names(body)[-2:] == ["clock__sleep", "list_events"]
    call, result = body["messages"][-2:]
    assert call["tool_calls"][0]["function"] == {"name": "tool_search",
                                                 "arguments": '{"query": "calendar"}'}
    assert result == {"role": "tool", "tool_call_id": "call_s",
                      "content": "Tools now available: list_events"}


# ------------------------------------------------------------------------ Agents SDK


def test_agents_sdk_tool_turn():
    items = [
        EasyInputMessageParam(content="weather in Paris?", role="user"),
        ResponseFunctionToolCallParam(arguments='{"city": "Paris"}', call_id="call_a637",
                                      name="get_weather", type="function_call",
                                      id="fc_24e3", status="completed"),
        {"call_id": "call_a637", "output": "It is sunny in Paris.",
         "type": "function_call_output"},
        {"id": "msg_4b0d", "content": [{"annotations": [], "text": "Sunny.",
                                        "type": "output_text", "logprobs": []}],
         "role": "assistant", "status": "completed", "type": "message"},
        {"role": "user", "content": "and tomorrow?"},
    ]
    body = chat(sdk_checked(agents_request(items)))
    assert body["messages"] == [
        {"role": "system", "content": "Use the tool."},
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a637", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_a637", "content": "It is sunny in Paris."},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "and tomorrow?"},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"],
        "parameters": WEATHER["parameters"], "strict": True}}]
    assert "tool_choice" not in body and "stream" not in body


def test_previous_response_id_history_comes_first_and_its_instructions_do_not():
    history = [{"type": "message", "role": "user", "content": "hi", "id": "msg_1"},
               {"type": "message", "role": "assistant", "id": "msg_2", "status": "completed",
                "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}]
    body = chat({"model": "gpt-4o", "input": "again", "previous_response_id": "resp_1"}, history)
    assert body["messages"] == [{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": "Hello!"},
                                {"role": "user", "content": "again"}]


def test_item_reference_resolves_against_stored_items_and_the_input():
    stored = {"msg_7": {"type": "message", "role": "user", "content": "remember me",
                        "id": "msg_7"}}
    items = [{"type": "item_reference", "id": "msg_7"},
             {"type": "message", "role": "user", "content": "and me", "id": "msg_8"},
             {"type": "item_reference", "id": "msg_8"}]
    body = to_chat_request({"model": "m", "input": items}, [], items_by_id=stored)
    assert [m["content"] for m in body["messages"]] == ["remember me", "and me", "and me"]
    listed = input_items({"model": "m", "input": items}, stored)
    assert [i["id"] for i in listed] == ["msg_7", "msg_8", "msg_8"]


def test_assistant_text_and_calls_join_one_message_and_reasoning_starts_the_next():
    blocks = [{"type": "thinking", "thinking": "plan", "signature": "sig"}]
    items = [
        {"role": "user", "content": "go"},
        {"type": "message", "role": "assistant", "content": "Calling."},
        {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "f", "arguments": "{}"},
        {"type": "reasoning", "summary": [], "encrypted_content": mw1.encode(blocks)},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    ]
    tools = [{"type": "function", "name": "f"}]
    messages = chat({"model": "m", "input": items, "tools": tools})["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "assistant"]
    assert messages[1]["content"] == "Calling."
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["a", "b"]
    assert messages[2]["thinking_blocks"] == blocks and messages[2]["reasoning_content"] == "plan"


def test_thinking_that_no_assistant_item_follows_is_dropped():
    reasoning = {"type": "reasoning", "summary": [], "encrypted_content": mw1.encode(
        [{"type": "thinking", "thinking": "t", "signature": "s"}])}
    items = [reasoning, {"role": "user", "content": "next"},
             {"role": "assistant", "content": "ok"}]
    messages = chat({"model": "m", "input": items})["messages"]
    assert messages == [{"role": "user", "content": "next"},
                        {"role": "assistant", "content": "ok"}]


# ------------------------------------------------------------------- parts and settings


def test_every_content_part_type():
    parts = [
        ResponseInputTextParam(type="input_text", text="look"),
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE",
         "filename": "a.pdf"},
        {"type": "input_file", "file_data": "aGVsbG8=", "filename": "notes.txt"},
    ]
    body = chat(sdk_checked({"model": "m", "input": [{"role": "user", "content": parts}]}))
    assert chat({"model": "m", "input": [{"role": "assistant", "content": [
        {"type": "refusal", "refusal": "No."}]}]})["messages"] == [
        {"role": "assistant", "content": "No."}]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR",
                                            "detail": "auto"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE",
                                  "filename": "a.pdf"}},
        {"type": "file", "file": {"file_data": "data:text/plain;base64,aGVsbG8=",
                                  "filename": "notes.txt"}},
    ]


def test_tool_output_with_an_image_keeps_the_parts():
    output = [{"type": "input_text", "text": "screenshot:"},
              {"type": "input_image", "image_url": "data:image/png;base64,iVBOR"}]
    items = [{"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "a", "output": output}]
    tool = chat({"model": "m", "input": items})["messages"][-1]
    assert tool["content"][1] == {"type": "image_url",
                                  "image_url": {"url": "data:image/png;base64,iVBOR"}}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        ({"type": "json_schema", "name": "city", "strict": True,
          "schema": {"type": "object", "properties": {"name": {"type": "string"}}}},
         {"type": "json_schema", "json_schema": {
             "name": "city", "strict": True,
             "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}),
    ],
)
def test_text_format_is_response_format(fmt, expected):
    body = chat({"model": "m", "input": "hi", "text": {"format": fmt}})
    assert body.get("response_format") == expected


def test_settings():
    body = chat({"model": "m", "input": "hi", "max_output_tokens": 3000, "temperature": 0.2,
                 "top_p": 0.9, "metadata": {"team": "a"}, "user": "u1", "store": True,
                 "truncation": "auto", "reasoning": {"effort": "high"}, "top_logprobs": 2,
                 "safety_identifier": "s1", "include": ["message.output_text.logprobs"]})
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == {
        "max_completion_tokens": 3000, "temperature": 0.2, "top_p": 0.9,
        "metadata": {"team": "a"}, "user": "u1", "reasoning_effort": "high",
        "thinking": {"type": "enabled", "budget_tokens": 2999}, "logprobs": True,
        "top_logprobs": 2, "safety_identifier": "s1"}


@pytest.mark.parametrize(
    ("effort", "limit", "thinking"),
    [("minimal", None, {"type": "enabled", "budget_tokens": 1024}),
     ("low", 1000, None), ("none", None, {"type": "disabled"})],
)
def test_effort_as_a_thinking_budget(effort, limit, thinking):
    body = chat({"model": "m", "input": "hi", "reasoning": {"effort": effort},
                 "max_output_tokens": limit})
    assert body["reasoning_effort"] == effort and body.get("thinking") == thinking


@pytest.mark.parametrize(
    ("choice", "expected", "kept"),
    [
        ("required", "required", ["f", "g"]),
        ({"type": "function", "name": "g"}, {"type": "function", "function": {"name": "g"}},
         ["f", "g"]),
        ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function",
                                                                   "name": "g"}]},
         "required", ["g"]),
    ],
)
def test_tool_choice(choice, expected, kept):
    tools = [{"type": "function", "name": "f"}, {"type": "function", "name": "g"}]
    body = chat({"model": "m", "input": "hi", "tools": tools, "tool_choice": choice})
    assert body["tool_choice"] == expected and names(body) == kept


# ------------------------------------------------------------------------------ errors

USER = {"role": "user", "content": "hi"}
BAD = [
    ("not an object", ["input"], None),
    ({"input": "hi"}, None, "model"),
    ({"model": "m", "input": 3}, None, "input"),
    ({"model": "m", "input": ["hi"]}, None, "input[0]"),
    ({"model": "m", "input": [{"type": "telepathy"}]}, None, "input[0].type"),
    ({"model": "m", "input": [{"type": "web_search_call", "id": "ws"}]}, None, "input[0].type"),
    ({"model": "m", "input": [{"content": "hi"}]}, None, "input[0].role"),
    ({"model": "m", "input": [{"role": "robot", "content": "hi"}]}, None, "input[0].role"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_video"}]}]}, None,
     "input[0].content[0].type"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
     None, "input[0].content[0].text"),
    ({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-1"}]}]}, None, "input[0].content[0].file_id"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}, None,
     "input[0].content[0].image_url"),
    ({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_url": "https://x/a.pdf"}]}]}, None,
     "input[0].content[0].file_url"),
    ({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-1"}]}]}, None, "input[0].content[0].file_id"),
    ({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_data": "aGk="}]}]}, None, "input[0].content[0].file_data"),
    ({"model": "m", "input": [{"role": "user", "content": [
        {"type": "refusal", "refusal": "no"}]}]}, None, "input[0].content[0].type"),
    ({"model": "m", "input": [{"role": "assistant", "content": [
        {"type": "input_image", "image_url": "https://x"}]}]}, None,
     "input[0].content[0].type"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, None,
     "input[0].call_id"),
    ({"model": "m", "input": [{"type": "function_call", "call_id": "a", "name": "f",
                               "arguments": {}}]}, None, "input[0].arguments"),
    ({"model": "m", "input": [{"type": "function_call_output", "call_id": "a", "output": 7}]},
     None, "input[0].output"),
    ({"model": "m", "input": [{"type": "reasoning", "summary": [{"text": "x"}]}]}, None,
     "input[0].summary[0].type"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "msg_x"}]}, None, "input[0].id"),
    ({"model": "m", "input": [USER], "tools": {"type": "function"}}, None, "tools"),
    ({"model": "m", "input": [USER], "tools": [{"type": "teleport"}]}, None, "tools[0].type"),
    ({"model": "m", "input": [USER], "tools": [{"type": "file_search"}]}, None,
     "tools[0].type"),
    ({"model": "m", "input": [USER], "tools": [{"type": "tool_search"}]}, None,
     "tools[0].type"),
    ({"model": "m", "input": [USER], "tools": [{"type": "function"}]}, None, "tools[0].name"),
    ({"model": "m", "input": [USER], "tools": [{"type": "namespace", "name": "n", "tools": [
        {"type": "code_interpreter"}]}]}, None, "tools[0].tools[0].type"),
    ({"model": "m", "input": [{"type": "additional_tools", "tools": [{"type": "mcp"}]}]}, None,
     "input[0].tools[0].type"),
    ({"model": "m", "input": [USER], "tool_choice": "sometimes"}, None, "tool_choice"),
    ({"model": "m", "input": [USER], "tools": [{"type": "function", "name": "f"}],
      "tool_choice": {"type": "function", "name": "g"}}, None, "tool_choice.name"),
    ({"model": "m", "input": [USER], "tools": [{"type": "function", "name": "f"}],
      "tool_choice": {"type": "web_search_preview"}}, None, "tool_choice.type"),
    ({"model": "m", "input": [USER], "text": {"format": {"type": "json_schema",
                                                         "schema": {}}}}, None,
     "text.format.name"),
    ({"model": "m", "input": [USER], "reasoning": {"effort": "maximal"}}, None,
     "reasoning.effort"),
    ({"model": "m", "input": [USER], "max_output_tokens": 0}, None, "max_output_tokens"),
    ({"model": "m", "input": [USER], "temperature": 3}, None, "temperature"),
    ({"model": "m", "input": [USER], "metadata": {"k": 1}}, None, "metadata.k"),
    ({"model": "m", "input": [USER], "background": True}, None, "background"),
    ({"model": "m", "input": [USER], "conversation": "conv_1"}, None, "conversation"),
    ({"model": "m", "input": []}, None, "input"),
]


@pytest.mark.parametrize(("body", "history", "param"), BAD, ids=[b[2] or "body" for b in BAD])
def test_malformed_bodies_are_a_400_with_the_json_path(body, history, param):
    with pytest.raises(GatewayError) as caught:
        to_chat_request(body, history or [])
    assert caught.value.status == 400 and caught.value.param == param, caught.value.message
    assert caught.value.code


def test_broken_history_is_a_400_on_previous_response_id():
    with pytest.raises(GatewayError) as caught:
        to_chat_request({"model": "m", "input": "hi"}, [{"type": "function_call"}])
    assert caught.value.param == "previous_response_id"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.sampled_from(["message", "user", "assistant", "function_call", "reasoning",
                       "input_text", "input_image", "mw1:e30", "type", "content", "tools"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["type", "role", "content", "text", "call_id", "name",
                                       "arguments", "output", "tools", "summary",
                                       "encrypted_content", "image_url", "id"]), inner,
                      max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=JSON, tools=JSON)
def test_garbage_is_only_ever_a_gateway_error(items, tools):
    for body in ({"model": "m", "input": items}, {"model": "m", "input": [USER], "tools": tools}):
        try:
            to_chat_request(body, [])
        except GatewayError as error:
            assert 400 <= error.status < 500


# ------------------------------------------------------------------------- input_items


def test_input_items_have_ids_and_the_listed_shape():
    items = input_items(agents_request([
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "sunny"},
        {"role": "assistant", "content": "Sunny."},
    ]))
    adapter = TypeAdapter(ResponseItem)
    for item in items:
        adapter.validate_python(item)
    assert [i["id"].split("_")[0] for i in items] == ["msg", "fc", "fco", "msg"]
    assert items[0]["content"] == [{"type": "input_text", "text": "weather?"}]
    assert items[3]["content"][0]["type"] == "output_text"
    assert input_items({"model": "m", "input": "hi"})[0]["content"] == [
        {"type": "input_text", "text": "hi"}]
    turn = [
        {"type": "reasoning", "id": "rs_459a", "content": None, "encrypted_content": "gAAA",
         "summary": [{"type": "summary_text", "text": "**Greeting**"}]},
        {"type": "custom_tool_call", "call_id": "p", "name": "apply_patch", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "p", "output": "Done!"},
        {"type": "tool_search_call", "call_id": "s", "arguments": {"query": "q"}},
        {"type": "tool_search_output", "call_id": "s", "tools": []},
    ]
    codex = input_items(codex_request(turn))
    for item in codex:
        adapter.validate_python(item)
    assert [i["id"] for i in codex][:5] == ["msg_9d95", "msg_01a1", "msg_01a2", "msg_01a3",
                                           "rs_459a"]
    assert codex[4] == turn[0]
