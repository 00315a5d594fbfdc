"""Gemini `GenerateContentResponse`s as canonical `chat.completion`s, and usage.

Pure; shared by the `gemini` and `vertex` providers and their stream translator. A thought
signature on a function call goes to the client as `extra_content.google.thought_signature`
(and as a `gemini:call:` thinking block); thought parts and signatures are the hub's
reasoning (`reasoning.PartReasoning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelway.canonical import CanonicalResponse, Usage
from modelway.errors import upstream_error
from modelway.plugins.providers.gemini.reasoning import PartReasoning
from modelway.providerkit import answer_object, as_int, dumps

JSON = dict[str, Any]

_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)

# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What an answer needs that Gemini may not say: an id, the model name, the time; and
    whether the request asked for reasoning (a text part's signature is kept only then)."""

    fallback_id: str
    model: str
    created: int
    reasoning: bool = False


def finish_reason(reason: Any, has_tool_calls: bool) -> str:
    """Gemini's finishReason as an OpenAI finish_reason."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


def openai_usage(metadata: Any) -> JSON | None:
    """`usageMetadata` as an OpenAI usage object; thinking tokens count as completion."""
    if not isinstance(metadata, dict):
        return None
    prompt = as_int(metadata.get("promptTokenCount")) + as_int(
        metadata.get("toolUsePromptTokenCount")
    )
    thoughts = as_int(metadata.get("thoughtsTokenCount"))
    completion = as_int(metadata.get("candidatesTokenCount")) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": as_int(metadata.get("cachedContentTokenCount"))},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def response_key(data: JSON, meta: ResponseMeta) -> str:
    """The answer's id: Gemini's `responseId`, else the fallback."""
    response_id = data.get("responseId")
    return response_id if isinstance(response_id, str) and response_id else meta.fallback_id


def response_model(data: JSON, meta: ResponseMeta) -> str:
    """The answering model: Gemini's `modelVersion`, else the one asked for."""
    version = data.get("modelVersion")
    return version if isinstance(version, str) and version else meta.model


def candidate_index(candidate: JSON, position: int) -> int:
    """A candidate's choice index: its own `index`, else its position."""
    return as_int(candidate.get("index"), position)


def candidate_parts(candidate: JSON) -> list[JSON]:
    """A candidate's content parts (the objects among them)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def tool_call(part: JSON, key: str, choice: int, number: int) -> JSON:
    """A `functionCall` part as an OpenAI tool call (an id is made when Gemini gives none)."""
    call = part["functionCall"]
    given = call.get("id")
    suffix = f"{number}" if choice == 0 else f"{choice}_{number}"
    out: JSON = {
        "id": given if isinstance(given, str) and given else f"call_{key}_{suffix}",
        "type": "function",
        "function": {
            "name": call.get("name") if isinstance(call.get("name"), str) else "",
            "arguments": dumps(call.get("args") or {}).decode(),
        },
    }
    if isinstance(part.get("thoughtSignature"), str):
        out["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return out


def _read_parts(
    parts: list[JSON], key: str, choice: int, reasoning: PartReasoning
) -> tuple[str, list[JSON]]:
    texts: list[str] = []
    calls: list[JSON] = []
    for part in parts:
        is_call = isinstance(part.get("functionCall"), dict) and part.get("thought") is not True
        reasoning.read(part, len(calls) if is_call else None)
        if part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif is_call:
            calls.append(tool_call(part, key, choice, len(calls)))
    return "".join(texts), calls


def _choice(candidate: JSON, position: int, key: str, meta: ResponseMeta) -> JSON:
    index = candidate_index(candidate, position)
    reasoning = PartReasoning(meta.reasoning)
    text, calls = _read_parts(candidate_parts(candidate), key, index, reasoning)
    message: JSON = {"role": "assistant", "content": text or None, **reasoning.fields()}
    if calls:
        message["tool_calls"] = calls
    reason = finish_reason(candidate.get("finishReason"), bool(calls))
    return {"index": index, "message": message, "finish_reason": reason, "logprobs": None}


def blocked(data: JSON) -> bool:
    """Whether Gemini refused the prompt itself (`promptFeedback.blockReason`)."""
    feedback = data.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def from_gemini_response(data: JSON, meta: ResponseMeta) -> JSON:
    """A GenerateContentResponse as an OpenAI chat.completion object."""
    key = response_key(data, meta)
    candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
    choices = [_choice(c, i, key, meta) for i, c in enumerate(candidates)]
    if not choices and not blocked(data):
        raise upstream_error(
            502, "the backend's answer has no candidates", "upstream_invalid_response"
        )
    if not choices:
        message = {"role": "assistant", "content": None}
        choices = [
            {"index": 0, "message": message, "finish_reason": "content_filter", "logprobs": None}
        ]
    answer: JSON = {
        "id": f"chatcmpl-{key}",
        "object": "chat.completion",
        "created": meta.created,
        "model": response_model(data, meta),
        "choices": choices,
    }
    usage = openai_usage(data.get("usageMetadata"))
    if usage is not None:
        answer["usage"] = usage
    return answer


def parse_gemini_answer(status: int, body: bytes, meta: ResponseMeta) -> CanonicalResponse:
    """A non-streamed generateContent answer (raw bytes) in canonical shape."""
    data = answer_object(body)
    answer = from_gemini_response(data, meta)
    return CanonicalResponse(answer, Usage.from_openai(answer.get("usage")), status)
