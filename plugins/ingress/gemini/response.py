"""A canonical `chat.completion` as a Gemini `GenerateContentResponse`: candidates, parts,
finish reasons, usage metadata. Pure; the stream encoder shares the part builders."""

from __future__ import annotations

import uuid
from typing import Any

from modelway.plugins.ingress.gemini.reasoning import thought_parts
from modelway.providerkit import as_int, loads_or_none

JSON = dict[str, Any]

FINISH_REASONS = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def finish_reason(reason: Any) -> str:
    """A canonical finish_reason as Gemini's `finishReason`."""
    if reason is None:
        return "STOP"
    return FINISH_REASONS.get(reason, "OTHER") if isinstance(reason, str) else "OTHER"


def usage_metadata(usage: Any) -> JSON | None:
    """OpenAI usage as `usageMetadata`; reasoning tokens are Gemini's thoughts."""
    if not isinstance(usage, dict):
        return None
    prompt = as_int(usage.get("prompt_tokens"))
    completion = as_int(usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details")
    thoughts = as_int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    cached_details = usage.get("prompt_tokens_details")
    cached = as_int(cached_details.get("cached_tokens")) if isinstance(cached_details, dict) else 0
    out: JSON = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(completion - thoughts, 0),
        "totalTokenCount": prompt + completion,
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def text_of(value: Any) -> str:
    """The text of message content: a string, or the text parts of a list joined."""
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return value if isinstance(value, str) else ""


def function_call_part(call: Any) -> JSON | None:
    """An OpenAI tool call as a `functionCall` part (its id and thought signature kept)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return None
    args = _arguments(function.get("arguments"))
    out: JSON = {"name": function.get("name") or "", "args": args}
    if isinstance(call.get("id"), str) and call["id"]:
        out = {"id": call["id"], **out}
    part: JSON = {"functionCall": out}
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str):
        part["thoughtSignature"] = signature
    return part


def _arguments(raw: Any) -> JSON:
    value = loads_or_none(raw) if isinstance(raw, str) and raw else {}
    return value if isinstance(value, dict) else {}


def message_parts(message: Any) -> list[JSON]:
    if not isinstance(message, dict):
        return []
    parts: list[JSON] = thought_parts(message)
    if text := text_of(message.get("content")) or text_of(message.get("refusal")):
        parts.append({"text": text})
    for call in message.get("tool_calls") or []:
        part = function_call_part(call)
        if part is not None:
            parts.append(part)
    return parts


def candidate(choice: Any, position: int) -> JSON:
    choice = choice if isinstance(choice, dict) else {}
    index = choice.get("index")
    out: JSON = {}
    parts = message_parts(choice.get("message"))
    if parts:
        out["content"] = {"role": "model", "parts": parts}
    out["finishReason"] = finish_reason(choice.get("finish_reason"))
    out["index"] = index if isinstance(index, int) else position
    return out


def response_id(upstream_id: Any) -> str:
    """The answer's id without OpenAI's `chatcmpl-` prefix (Gemini answers carry the bare id)."""
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id.removeprefix("chatcmpl-")
    return uuid.uuid4().hex


def to_gemini_response(body: JSON, model: str) -> JSON:
    """A GenerateContentResponse for a canonical `chat.completion`."""
    choices = body.get("choices")
    choices = choices if isinstance(choices, list) else []
    out: JSON = {"candidates": [candidate(c, i) for i, c in enumerate(choices)]}
    usage = usage_metadata(body.get("usage"))
    if usage is not None:
        out["usageMetadata"] = usage
    upstream_model = body.get("model")
    out["modelVersion"] = upstream_model if isinstance(upstream_model, str) else model
    out["responseId"] = response_id(body.get("id"))
    return out
