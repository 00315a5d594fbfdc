"""A Responses API `response` object as a hub `chat.completion`.

Output items map back to one assistant message: message text to `content`, refusals to
`refusal`, function and custom tool calls to `tool_calls`, reasoning summaries (or reasoning
text) to `reasoning_content`. OpenAI's encrypted reasoning cannot be read, only sent back:
it is kept on the message in the hub extension `reasoning_items` (`[{"id",
"encrypted_content"}]`), which `to_responses_request` turns back into reasoning items.
"""

from __future__ import annotations

from typing import Any

from modelway.errors import GatewayError, upstream_error
from modelway.plugins.providers.responses.request import REASONING_ITEMS, as_dict

Json = dict[str, Any]

FINISH_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
"""`incomplete_details.reason` as a hub finish reason."""
ERROR_STATUSES = {"rate_limit_exceeded": 429, "invalid_prompt": 400, "server_error": 502}


def from_response(response: Any) -> Json:
    """The hub `chat.completion` for a finished Responses object; a GatewayError (502) for
    a failed, unfinished or garbled one."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise upstream_error(502, "the backend's answer has no 'output' list",
                             "upstream_invalid_response")
    if response.get("status") == "failed":
        raise failed(response.get("error"))
    if response.get("status") not in (None, "completed", "incomplete"):
        raise upstream_error(502, f"the backend's response is {response.get('status')}",
                             "upstream_invalid_response")
    message = assistant_message(response["output"])
    choice: Json = {"index": 0, "message": message, "finish_reason": finish_reason(response,
                    bool(message.get("tool_calls")))}
    reason = as_dict(response.get("incomplete_details")).get("reason")
    if reason:
        choice["native_finish_reason"] = reason
    completion: Json = {
        "id": str(response.get("id") or ""),
        "object": "chat.completion",
        "created": int(response.get("created_at") or 0),
        "model": str(response.get("model") or ""),
        "choices": [choice],
    }
    usage = chat_usage(response.get("usage"))
    if usage is not None:
        completion["usage"] = usage
    return completion


def assistant_message(output: list[Any]) -> Json:
    text, refusal, reasoning, calls, kept = [], [], [], [], []
    for item in output:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    refusal.append(str(part.get("refusal") or ""))
        elif kind == "reasoning":
            reasoning.append(reasoning_text(item))
            if item.get("encrypted_content"):
                kept.append({"id": item.get("id"), "encrypted_content": item["encrypted_content"]})
        elif kind in ("function_call", "custom_tool_call"):
            calls.append(tool_call(item))
    message: Json = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if refusal:
        message["refusal"] = "".join(refusal)
    if any(reasoning):
        message["reasoning_content"] = "\n\n".join(r for r in reasoning if r)
    if kept:
        message[REASONING_ITEMS] = kept
    if calls:
        message["tool_calls"] = calls
    return message


def reasoning_text(item: Json) -> str:
    """The summary parts (or, for models that show it, the reasoning text), joined."""
    parts = item.get("summary") or item.get("content") or ()
    return "\n\n".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))


def tool_call(item: Json) -> Json:
    if item["type"] == "custom_tool_call":
        custom = {"name": item.get("name"), "input": item.get("input") or ""}
        return {"id": item.get("call_id"), "type": "custom", "custom": custom}
    function = {"name": item.get("name"), "arguments": item.get("arguments") or ""}
    return {"id": item.get("call_id"), "type": "function", "function": function}


def finish_reason(response: Json, has_calls: bool) -> str:
    reason = as_dict(response.get("incomplete_details")).get("reason")
    if response.get("status") == "incomplete":
        return FINISH_REASONS.get(str(reason), "length")
    return "tool_calls" if has_calls else "stop"


def chat_usage(usage: Any) -> Json | None:
    """Responses usage as hub usage (cache writes in `cache_creation_input_tokens`)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    inputs = as_dict(usage.get("input_tokens_details"))
    outputs = as_dict(usage.get("output_tokens_details"))
    out: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _int(inputs.get("cached_tokens"))},
        "completion_tokens_details": {"reasoning_tokens": _int(outputs.get("reasoning_tokens"))},
    }
    if _int(inputs.get("cache_write_tokens")):
        out["cache_creation_input_tokens"] = _int(inputs.get("cache_write_tokens"))
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def failed(error: Any) -> GatewayError:
    """A failed response's `error` (or an `error` event) as a GatewayError."""
    fields = as_dict(error)
    code = str(fields.get("code") or "upstream_error")
    message = fields.get("message")
    return upstream_error(
        ERROR_STATUSES.get(code, 502),
        message if isinstance(message, str) and message else "the backend's response failed",
        code,
    )
