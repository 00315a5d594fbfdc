"""What a request will use before it is sent: prompt tokens from the tokenizer, plus its
output cap (or a configured default). Large texts are counted in the tokenizer's sampled mode
(about a millisecond whatever the size), so the estimate never stalls the event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelway import tokens
from modelway.wire import (
    ANTHROPIC_MESSAGES,
    GEMINI_GENERATE,
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    Call,
)

if TYPE_CHECKING:
    from modelway.context import RequestContext

_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_PROMPT = "estimate.prompt_tokens"


def prompt_tokens(call: Call) -> int:
    body = call.body
    if call.wire == OPENAI_CHAT:
        return tokens.estimate_chat(body)
    if call.wire == ANTHROPIC_MESSAGES:
        return tokens.estimate_messages(body)
    if call.wire == GEMINI_GENERATE:
        return tokens.estimate_gemini(body)
    if call.wire in (OPENAI_EMBEDDINGS, OPENAI_RESPONSES):
        parts = [body.get("instructions"), body.get("input")]
        return sum(tokens.count_text(_text(p), call.model) for p in parts if p)
    if len(call.raw) <= tokens.EXACT_LIMIT * 8:
        return tokens.count_text(call.raw.decode("utf-8", "replace"), call.model)
    return len(call.raw) // 4  # an unknown body: bytes/4, without decoding megabytes


def output_cap(call: Call, default: int) -> int:
    """The most output the request asked for, else `default` (0 for embeddings)."""
    if call.wire == OPENAI_EMBEDDINGS:
        return 0
    body = call.body
    for name in _CAPS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    config = body.get("generationConfig") or body.get("generation_config")
    if isinstance(config, dict):
        value = config.get("maxOutputTokens") or config.get("max_output_tokens")
        if isinstance(value, int) and value > 0:
            return value
    return default


def request_tokens(ctx: RequestContext, default_output: int) -> tuple[int, int]:
    """(prompt, output) token estimates of the request's call; the prompt is counted once
    per request, whichever plugin asks first."""
    assert ctx.call is not None
    prompt = ctx.plugin_state.get(_PROMPT)
    if prompt is None:
        prompt = ctx.plugin_state[_PROMPT] = prompt_tokens(ctx.call)
    return prompt, output_cap(ctx.call, default_output)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
