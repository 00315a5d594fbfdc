"""Every built-in provider keeps the provider contract (modelway.testing.contract).

Each provider gets sample bytes of its wire format: a good answer, a good stream, the stream
cut before its end marker, a stream with an error event, and a rejected-key error body.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelway.extension import ProviderSpec
from modelway.plugins.providers import anthropic, azure, bedrock, gemini, mock, openai, vertex
from modelway.testing.contract import CHECKS, GATEWAY_KEY, ProviderSamples, check_provider
from tests.test_bedrock_provider import event, exception_frame

USAGE = (5, 2)
MESSAGE = "the key you sent is not valid"


def _spec(module: Any) -> ProviderSpec:
    [spec] = module.modelway_providers()
    return spec


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _sse(*events: Any, named: bool = False) -> bytes:
    """Server-sent events; `named` adds `event: <type>` lines (Anthropic's form)."""
    out = b""
    for item in events:
        head = f"event: {item['type']}\n".encode() if named and isinstance(item, dict) else b""
        data = item if isinstance(item, str) else json.dumps(item)
        out += head + b"data: " + data.encode() + b"\n\n"
    return out


# --------------------------------------------------------------------------- OpenAI's wire


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}


_OPENAI_USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
_OPENAI_HEAD = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hel"})]
_OPENAI_TAIL = [
    _chunk({"content": "lo"}),
    _chunk({}, "stop"),
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": _OPENAI_USAGE},
]
_OPENAI_ERROR = {"error": {"message": "overloaded", "type": "server_error", "code": None}}


def _openai(name: str, spec: ProviderSpec, **extra: Any) -> ProviderSamples:
    message = {"role": "assistant", "content": "Hello"}
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "model": "m", "usage": _OPENAI_USAGE}
    answer["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
    error = {"error": {"message": f"{MESSAGE}: {GATEWAY_KEY}", "type": "invalid_request_error"}}
    return ProviderSamples(
        name=name,
        spec=spec,
        answer=_json(answer),
        stream=_sse(*_OPENAI_HEAD, *_OPENAI_TAIL, "[DONE]"),
        truncated_stream=_sse(*_OPENAI_HEAD),
        error_stream=_sse(*_OPENAI_HEAD, _OPENAI_ERROR, *_OPENAI_TAIL, "[DONE]"),
        error_body=_json(error),
        error_message=MESSAGE,
        usage=USAGE,
        **extra,
    )


# --------------------------------------------------------------------------- Anthropic's wire


def _delta(text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


_MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x"}
_ANTHROPIC_HEAD = [
    {"type": "message_start", "message": {**_MESSAGE, "content": [], "usage": {"input_tokens": 5}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    _delta("Hel"),
    _delta("lo"),
    {"type": "content_block_stop", "index": 0},
]
_ANTHROPIC_TAIL = [
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]
_ANTHROPIC_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def _anthropic(name: str, spec: ProviderSpec, **extra: Any) -> ProviderSamples:
    content = [{"type": "text", "text": "Hello"}]
    usage = {"input_tokens": 5, "output_tokens": 2}
    answer = {**_MESSAGE, "content": content, "stop_reason": "end_turn", "usage": usage}
    error = {"type": "error", "error": {"type": "authentication_error", "message": MESSAGE}}
    return ProviderSamples(
        name=name,
        spec=spec,
        answer=_json(answer),
        stream=_sse(*_ANTHROPIC_HEAD, *_ANTHROPIC_TAIL, named=True),
        truncated_stream=_sse(*_ANTHROPIC_HEAD, named=True),
        error_stream=_sse(*_ANTHROPIC_HEAD[:3], _ANTHROPIC_ERROR, *_ANTHROPIC_HEAD[3:], named=True),
        error_body=_json(error),
        error_message=MESSAGE,
        usage=USAGE,
        **extra,
    )


# --------------------------------------------------------------------------- Gemini's wire


def _candidate(text: str, finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "responseId": "r1", "modelVersion": "gemini-x"}


_GEMINI_USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}
_GEMINI_LAST = {**_candidate("lo", "STOP"), "usageMetadata": _GEMINI_USAGE}
_GEMINI_ERROR = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}


def _gemini(name: str, spec: ProviderSpec, **extra: Any) -> ProviderSamples:
    error = {"error": {"code": 401, "message": MESSAGE, "status": "UNAUTHENTICATED"}}
    return ProviderSamples(
        name=name,
        spec=spec,
        answer=_json({**_candidate("Hello", "STOP"), "usageMetadata": _GEMINI_USAGE}),
        stream=_sse(_candidate("Hel"), _GEMINI_LAST),
        truncated_stream=_sse(_candidate("Hel")),
        error_stream=_sse(_candidate("Hel"), _GEMINI_ERROR, _GEMINI_LAST),
        error_body=_json(error),
        error_message=MESSAGE,
        usage=USAGE,
        **extra,
    )


# --------------------------------------------------------------------------- Bedrock's wire

_TEXT = {"contentBlockIndex": 0, "delta": {"text": "Hel"}}
_BEDROCK_HEAD = event("messageStart", {"role": "assistant"}) + event("contentBlockDelta", _TEXT)
_BEDROCK_TAIL = (
    event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}})
    + event("contentBlockStop", {"contentBlockIndex": 0})
    + event("messageStop", {"stopReason": "end_turn"})
    + event("metadata", {"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}})
)


def _bedrock() -> ProviderSamples:
    message = {"role": "assistant", "content": [{"text": "Hello"}]}
    usage = {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}
    answer = {"output": {"message": message}, "stopReason": "end_turn", "usage": usage}
    throttled = exception_frame("throttlingException", "Too many tokens, slow down.")
    return ProviderSamples(
        name="bedrock",
        spec=_spec(bedrock),
        answer=_json(answer),
        stream=_BEDROCK_HEAD + _BEDROCK_TAIL,
        truncated_stream=_BEDROCK_HEAD,
        error_stream=_BEDROCK_HEAD + throttled + _BEDROCK_TAIL,
        error_body=_json({"message": MESSAGE}),
        error_message=MESSAGE,
        usage=USAGE,
        options={"region": "us-east-1"},
        model="anthropic.claude-3-5-haiku-20241022-v1:0",
    )


VERTEX = {"project": "contract-project", "location": "us-central1"}
AZURE = {"resource": "contract", "api_version": "2024-10-21"}
SAMPLES = [
    _openai("openai", _spec(openai)),
    _openai("mock", _spec(mock)),
    _openai("azure", _spec(azure), options=AZURE),
    _anthropic("anthropic", _spec(anthropic)),
    _gemini("gemini", _spec(gemini), model="gemini-2.5-flash"),
    _gemini("vertex-gemini", _spec(vertex), options=VERTEX, model="gemini-2.5-flash"),
    _anthropic("vertex-claude", _spec(vertex), options=VERTEX, model="claude-sonnet-4-5"),
    _bedrock(),
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
@pytest.mark.parametrize("samples", SAMPLES, ids=lambda samples: samples.name)
def test_builtin_provider_keeps_the_contract(samples: ProviderSamples, check: Any) -> None:
    check(samples)


def test_check_provider_runs_every_check_in_one_line():
    check_provider(SAMPLES[0])


def test_a_broken_provider_fails_the_contract():
    cut_as_complete = _openai("broken", _spec(openai))
    broken = ProviderSamples(
        **{**cut_as_complete.__dict__, "truncated_stream": cut_as_complete.stream}
    )
    with pytest.raises(AssertionError, match="broken: a truncated stream"):
        check_provider(broken)
