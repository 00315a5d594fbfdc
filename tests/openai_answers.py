"""What an OpenAI client received, rebuilt for comparison: a stream reassembled into the
answer's shape, and a whole answer flattened into the same shape (choice 0, plus usage)."""

from __future__ import annotations

from typing import Any


def reassemble(chunks: list[Any]) -> dict[str, Any]:
    """The answer an OpenAI client rebuilds from stream chunks (choice 0), plus usage."""
    content: str | None = None
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = _usage(chunk.usage)
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                content = (content or "") + delta.content
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return {
        "content": content,
        "tool_calls": [calls[i] for i in sorted(calls)],
        "finish_reason": finish,
        "usage": usage,
    }


def flatten(answer: Any) -> dict[str, Any]:
    """A non-streamed answer in the shape `reassemble` gives."""
    message = answer.choices[0].message
    calls = [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls or []
    ]
    return {
        "content": message.content,
        "tool_calls": calls,
        "finish_reason": answer.choices[0].finish_reason,
        "usage": _usage(answer.usage) if answer.usage else None,
    }


def _usage(usage: Any) -> dict[str, Any]:
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": prompt_details.cached_tokens if prompt_details else None,
        "reasoning_tokens": completion_details.reasoning_tokens if completion_details else None,
    }
