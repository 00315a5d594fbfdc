"""Shared shapes and helpers for the Responses API translation tests.

The client requests replicate what Codex CLI (0.171, `wire_api = "responses"`) and the
OpenAI Agents SDK (0.24) were recorded sending to a Responses endpoint (shortened texts,
same structure: item kinds, ids, tool types, parameters; the recordings and their write-up
were made on this machine against a recording server). Helpers parse SSE bytes into
events and validate every object with the installed `openai` SDK's pydantic models.
"""

from __future__ import annotations

import json
from typing import Any

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from modelway.sse import SSEDecoder

Json = dict[str, Any]
EVENT = TypeAdapter(ResponseStreamEvent)

# ------------------------------------------------------------------------------ SDK checks


def sdk_response(data: Json) -> Response:
    """The object must be a valid `Response` for the installed SDK."""
    return Response.model_validate(data)


def sse_events(data: bytes) -> list[Json]:
    """SSE bytes as event dicts; each event's `event:` name must equal its data's type and
    each must validate as one of the SDK's stream events."""
    decoder = SSEDecoder()
    out = []
    for event in decoder.feed(data) + decoder.close():
        payload = json.loads(event.data)
        assert event.event == payload["type"]
        EVENT.validate_python(payload)
        out.append(payload)
    return out


def kinds(events: list[Json]) -> list[str]:
    return [e["type"] for e in events]


# ----------------------------------------------------------------------------- hub shapes


def chunk(delta: Json, finish: str | None = None) -> Json:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "claude-sonnet-4-5",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk(usage: Json) -> Json:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "claude-sonnet-4-5", "choices": [], "usage": usage}


def call_delta(index: int, *, id_: str | None = None, name: str | None = None,
               arguments: str = "") -> Json:
    call: Json = {"index": index, "function": {"arguments": arguments}}
    if id_:
        call.update(id=id_, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 40,
    "total_tokens": 160,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 25},
    "cache_creation_input_tokens": 12,
}


def assemble(chunks: list[Json]) -> Json:
    """Hub chunks as the `chat.completion` they stand for (the gateway's own reading of
    the hub stream extensions: a signature closes the thinking block before it)."""
    message: Json = {"role": "assistant", "content": None}
    blocks: list[Json] = []
    text, pending, calls = "", "", {}
    finish, usage = None, None
    for c in chunks:
        usage = c.get("usage") or usage
        for choice in c.get("choices") or ():
            delta = choice.get("delta") or {}
            finish = choice.get("finish_reason") or finish
            if delta.get("reasoning_content"):
                pending += delta["reasoning_content"]
                message["reasoning_content"] = (message.get("reasoning_content") or "") + \
                    delta["reasoning_content"]
            if "reasoning_signature" in delta:
                blocks.append({"type": "thinking", "thinking": pending,
                               "signature": delta["reasoning_signature"]})
                pending = ""
            if "redacted_reasoning" in delta:
                blocks.append({"type": "redacted_thinking", "data": delta["redacted_reasoning"]})
            text += delta.get("content") or ""
            if delta.get("refusal"):
                message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(call["index"], {"id": None, "type": "function",
                                                        "function": {"name": "", "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
    message["content"] = text or None
    if blocks:
        message["thinking_blocks"] = blocks
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    completion = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
                  "model": "claude-sonnet-4-5",
                  "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if usage:
        completion["usage"] = usage
    return completion


# ------------------------------------------------------------------ what clients send

LARK = (
    'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n'
    'end_patch: "*** End Patch" LF?\n%import common.LF\n'
)


def codex_tools() -> list[Json]:
    """Codex's tools: functions (strict false), a namespace, a custom tool, tool search
    run by the client, and the built-in web search it always adds."""
    schema = {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"],
              "additionalProperties": False}
    target = {"type": "object", "properties": {"target": {"type": "string"}},
              "required": ["target"], "additionalProperties": False}
    return [
        {"type": "function", "name": "exec_command", "description": "Runs a command in a PTY.",
         "strict": False, "parameters": schema},
        {"type": "namespace", "name": "multi_agent_v1",
         "description": "Tools for spawning and managing sub-agents.",
         "tools": [{"type": "function", "name": "close_agent", "description": "Close an agent.",
                    "strict": False, "parameters": target}]},
        {"type": "custom", "name": "apply_patch",
         "description": "Use the `apply_patch` tool to edit files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": LARK}},
        {"type": "tool_search", "execution": "client", "description": "# Tool discovery",
         "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                        "required": ["query"], "additionalProperties": False}},
        {"type": "web_search", "external_web_access": False},
    ]


def codex_request(input_items: list[Json], **extra: Any) -> Json:
    body = {
        "model": "gpt-5.5",
        "input": [
            {"type": "message", "id": "msg_9d95", "role": "developer",
             "content": [{"type": "input_text", "text": "You are a coding agent."}]},
            {"type": "message", "id": "msg_01a1", "role": "developer",
             "content": [{"type": "input_text", "text": "<skills_instructions/>"},
                         {"type": "input_text", "text": "<permissions instructions/>"}]},
            {"type": "message", "id": "msg_01a2", "role": "user",
             "content": [{"type": "input_text", "text": "<environment_context/>"}]},
            {"type": "message", "id": "msg_01a3", "role": "user",
             "content": [{"type": "input_text", "text": "say hi"}]},
            *input_items,
        ],
        "tools": codex_tools(),
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "01a2356b-6a60-7681-a4d2-c76ea686f859",
        "text": {"verbosity": "low"},
        "client_metadata": {"x-codex-installation-id": "0f4c9230"},
    }
    body.update(extra)
    return body


WEATHER = {
    "name": "get_weather", "type": "function", "strict": True,
    "description": "Return the weather for a city.",
    "parameters": {"properties": {"city": {"title": "City", "type": "string"}},
                   "required": ["city"], "title": "get_weather_args", "type": "object",
                   "additionalProperties": False},
}


def agents_request(input_items: list[Json], **extra: Any) -> Json:
    """The Agents SDK: easy messages, `include: []`, instructions, strict tools."""
    body = {"model": "gpt-4o", "instructions": "Use the tool.", "include": [],
            "input": input_items, "tools": [WEATHER]}
    body.update(extra)
    return body
