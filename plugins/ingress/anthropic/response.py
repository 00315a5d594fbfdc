"""A canonical `chat.completion` as an Anthropic `message`: content, stop reason, usage. Pure."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from modelway.hubext import CACHE_WRITE, REASONING_CONTENT, STOP_REASON, THINKING_BLOCKS
from modelway.plugins.providers.anthropic.response import FINISH_TO_STOP
from modelway.providerkit import as_int


def new_message_id(upstream_id: Any = None) -> str:
    """An Anthropic message id: the upstream's own when it is one, else a fresh `msg_` id."""
    if isinstance(upstream_id, str) and upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + uuid.uuid4().hex[:24]


def stop_reason(choice: dict[str, Any], stop_sequences: Sequence[str]) -> tuple[str, str | None]:
    """Anthropic's `stop_reason` and `stop_sequence` for a canonical choice.

    OpenAI does not say which stop sequence ended the answer; servers that do (vLLM's
    `stop_reason`, a `stop_sequence` field) are believed when it is one the client sent.
    """
    finish = choice.get("finish_reason")
    own = choice.get(STOP_REASON)
    if own in _OWN_STOPS:
        return own, None
    if finish == "stop":
        for key in ("stop_sequence", "stop_reason"):
            matched = choice.get(key)
            if isinstance(matched, str) and matched in stop_sequences:
                return "stop_sequence", matched
    return FINISH_TO_STOP.get(finish if isinstance(finish, str) else "", "end_turn"), None


_OWN_STOPS = frozenset({"pause_turn", "refusal", "model_context_window_exceeded"})


def anthropic_usage(usage: Any) -> dict[str, int]:
    """Anthropic usage from OpenAI usage: cache reads and writes are not `input_tokens`
    there, each has its own field."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    cached = as_int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    written = as_int(usage.get(CACHE_WRITE))
    out = {
        "input_tokens": max(as_int(usage.get("prompt_tokens")) - cached - written, 0),
        "output_tokens": as_int(usage.get("completion_tokens")),
    }
    if cached or written:
        out["cache_creation_input_tokens"] = written
        out["cache_read_input_tokens"] = cached
    return out


def thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's thinking as Anthropic blocks: the hub's signed blocks, else the
    reasoning text of an OpenAI-compatible backend as one unsigned block."""
    blocks = message.get(THINKING_BLOCKS)
    if isinstance(blocks, list) and blocks:
        return [b for b in blocks if isinstance(b, dict) and b.get("type") in _THINKING]
    text = message.get(REASONING_CONTENT)
    if isinstance(text, str) and text:
        return [{"type": "thinking", "thinking": text, "signature": ""}]
    return []


_THINKING = ("thinking", "redacted_thinking")


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not content and isinstance(message.get("refusal"), str):
        content = message["refusal"]
    return content if isinstance(content, str) else ""


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` must be ({} if unparsable)."""
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or "",
        "name": function.get("name") or "",
        "input": tool_input(function.get("arguments")),
    }


def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = thinking_blocks(message)
    if text := message_text(message):
        blocks.append({"type": "text", "text": text})
    blocks.extend(tool_use_block(call) for call in message.get("tool_calls") or [])
    return blocks


def to_anthropic_message(
    body: dict[str, Any], *, model: str, stop_sequences: Sequence[str], message_id: str
) -> dict[str, Any]:
    """An Anthropic `message` for a canonical `chat.completion` (its first choice)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reason, sequence = stop_reason(choice, stop_sequences)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model") if isinstance(body.get("model"), str) else model,
        "content": content_blocks(choice.get("message") or {}),
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(body.get("usage")),
    }
