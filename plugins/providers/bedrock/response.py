"""Bedrock Converse answers as canonical `chat.completion`s: finish reasons, usage. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelway.errors import upstream_error
from modelway.providerkit import as_int, dumps

JSON = dict[str, Any]

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's finish reason for a Converse `stopReason` (unknown ones end as `stop`)."""
    return _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: Any) -> JSON | None:
    """Converse `usage` as OpenAI usage. Bedrock's `inputTokens` leaves out cached input, which
    OpenAI's `prompt_tokens` counts (with the cache reads in `cached_tokens`)."""
    if not isinstance(usage, Mapping):
        return None
    cached = as_int(usage.get("cacheReadInputTokens"))
    prompt = as_int(usage.get("inputTokens")) + cached + as_int(usage.get("cacheWriteInputTokens"))
    completion = as_int(usage.get("outputTokens"))
    out: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if "cacheReadInputTokens" in usage:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def chat_completion(data: Any, *, response_id: str, model: str, created: int) -> JSON:
    """A Converse answer as an OpenAI `chat.completion`; GatewayError 502 if it is garbled."""
    choice = {
        "index": 0,
        "message": _assistant_message(_output_message(data)),
        "finish_reason": finish_reason(data.get("stopReason")),
        "logprobs": None,
    }
    out: JSON = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    usage = openai_usage(data.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def _assistant_message(message: Mapping[str, Any]) -> JSON:
    """Text blocks joined as `content`, toolUse blocks as `tool_calls`; others are dropped."""
    blocks = [b for b in message["content"] if isinstance(b, Mapping)]
    texts = [b["text"] for b in blocks if isinstance(b.get("text"), str)]
    calls = [_tool_call(b["toolUse"]) for b in blocks if isinstance(b.get("toolUse"), Mapping)]
    answer: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        answer["tool_calls"] = calls
    return answer


def _output_message(data: Any) -> Mapping[str, Any]:
    output = data.get("output") if isinstance(data, Mapping) else None
    message = output.get("message") if isinstance(output, Mapping) else None
    if not isinstance(message, Mapping) or not isinstance(message.get("content"), list):
        raise upstream_error(
            502, "the backend's answer has no output message", "upstream_invalid_response"
        )
    return message


def _tool_call(tool_use: Mapping[str, Any]) -> JSON:
    arguments = dumps(tool_use.get("input", {})).decode()
    return {
        "id": tool_use.get("toolUseId"),
        "type": "function",
        "function": {"name": tool_use.get("name"), "arguments": arguments},
    }
