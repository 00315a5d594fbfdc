"""Anthropic Messages answers as canonical `chat.completion`s, and the tables both ways.

Pure. The stop-reason table and the block and usage converters also have their inverses
here (`FINISH_TO_STOP`, `block_to_content_part`, `usage_to_anthropic`) so an
Anthropic-format ingress can translate the other way with the same rules.
"""

from __future__ import annotations

import json
import time
from typing import Any

from modelway.canonical import CanonicalResponse, Usage
from modelway.errors import bad_request, upstream_error
from modelway.hubext import (
    CACHE_WRITE,
    REASONING_CONTENT,
    STOP_REASON,
    STOP_SEQUENCE,
    THINKING_BLOCKS,
)
from modelway.providerkit import as_dict, as_int, loads_or_none

Json = dict[str, Any]

STOP_TO_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic `stop_reason` -> OpenAI `finish_reason`; anything else becomes `stop`."""

FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""OpenAI `finish_reason` -> Anthropic `stop_reason` (for an Anthropic-format ingress)."""


def finish_reason(stop_reason: Any) -> str:
    """The OpenAI finish reason for an Anthropic stop reason."""
    return STOP_TO_FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason(finish: Any) -> str:
    """The Anthropic stop reason for an OpenAI finish reason."""
    return FINISH_TO_STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def image_url_from_source(source: Json) -> str:
    """An Anthropic image `source` as an OpenAI image URL (a data URL for base64)."""
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    return str(source.get("url", ""))


def block_to_content_part(block: Json) -> Json:
    """An Anthropic text, image or base64 document block as an OpenAI content part."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    source = as_dict(block.get("source"))
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": image_url_from_source(source)}}
    if kind == "document" and source.get("type") == "base64":
        return {"type": "file", "file": {"file_data": image_url_from_source(source)}}
    raise bad_request(f"content blocks of type '{kind}' have no OpenAI equivalent")


def message_to_completion(message: Json, *, created: int) -> Json:
    """An Anthropic Message as an OpenAI `chat.completion` (text joined, tool_use as calls)."""
    blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
    texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
    calls = [b for b in blocks if b.get("type") == "tool_use"]
    reply: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    reply.update(reasoning_fields(blocks))
    if calls:
        reply["tool_calls"] = [tool_call_from_block(block) for block in calls]
    choice: Json = {
        "index": 0,
        "message": reply,
        "finish_reason": finish_reason(message.get("stop_reason")),
        "logprobs": None,
    }
    choice.update(stop_fields(message.get("stop_reason"), message.get("stop_sequence")))
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model"),
        "choices": [choice],
        "usage": usage_from_anthropic(message.get("usage")),
    }


def reasoning_fields(blocks: list[Json]) -> Json:
    """The hub's `reasoning_content` and `thinking_blocks` for an answer's thinking blocks."""
    kept: list[Json] = []
    for block in blocks:
        if block.get("type") == "thinking":
            kept.append(
                {
                    "type": "thinking",
                    "thinking": str(block.get("thinking") or ""),
                    "signature": str(block.get("signature") or ""),
                }
            )
        elif block.get("type") == "redacted_thinking":
            kept.append({"type": "redacted_thinking", "data": str(block.get("data") or "")})
    if not kept:
        return {}
    text = "".join(b.get("thinking", "") for b in kept)
    return {REASONING_CONTENT: text, THINKING_BLOCKS: kept}


_OWN_STOPS = frozenset({"pause_turn", "refusal", "model_context_window_exceeded"})


def stop_fields(reason: Any, sequence: Any) -> Json:
    """The hub's choice extensions: the matched stop sequence, a stop reason of its own."""
    if reason == "stop_sequence" and isinstance(sequence, str):
        return {STOP_SEQUENCE: sequence}
    return {STOP_REASON: reason} if reason in _OWN_STOPS else {}


def tool_call_from_block(block: Json) -> Json:
    """An Anthropic `tool_use` block as an OpenAI tool call (input as a JSON string)."""
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": dump_arguments(block.get("input"))},
    }


def dump_arguments(value: Any) -> str:
    """Tool input as OpenAI's `arguments` string, spaced the way Anthropic streams it."""
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def usage_from_anthropic(usage: Any) -> Json:
    """Anthropic usage as OpenAI usage.

    `prompt_tokens` counts all input: `input_tokens` plus cache writes and cache reads;
    cache reads are also `prompt_tokens_details.cached_tokens`.
    """
    data = usage if isinstance(usage, dict) else {}
    cached = as_int(data.get("cache_read_input_tokens"))
    prompt = as_int(data.get("input_tokens")) + as_int(data.get("cache_creation_input_tokens"))
    prompt += cached
    completion = as_int(data.get("output_tokens"))
    out: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if written := as_int(data.get("cache_creation_input_tokens")):
        out[CACHE_WRITE] = written
    details = data.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
        out["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    return out


def usage_to_anthropic(usage: Any) -> Json:
    """OpenAI usage as Anthropic usage (cached prompt tokens as cache reads)."""
    data = usage if isinstance(usage, dict) else {}
    details = data.get("prompt_tokens_details")
    cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return {
        "input_tokens": max(as_int(data.get("prompt_tokens")) - cached, 0),
        "output_tokens": as_int(data.get("completion_tokens")),
        "cache_read_input_tokens": cached,
    }


def parse_message(status: int, body: bytes) -> CanonicalResponse:
    """A non-streamed Messages answer (raw bytes) in canonical shape; 502 if it is not one."""
    data = loads_or_none(body)
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise upstream_error(
            502, "the backend's answer is not an Anthropic message", "upstream_invalid_response"
        )
    completion = message_to_completion(data, created=int(time.time()))
    return CanonicalResponse(completion, Usage.from_openai(completion["usage"]), status)
