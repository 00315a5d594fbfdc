"""Hub answers as Responses `response` objects, and the pieces the stream encoder shares.

`to_response` turns a hub `chat.completion` into the `response` a Responses client expects:
the output items (reasoning with its summary and the mw1 `encrypted_content`, the message,
function / custom / tool-search calls), status and incomplete details, usage, and the
request's parameters echoed as the API does. Item ids derive from the response id and the
item's position, so the streamed answer (`stream.py`) names its items the same way.
"""

from __future__ import annotations

import json
from typing import Any

from modelway.errors import GatewayError
from modelway.plugins.ingress.responses import mw1
from modelway.plugins.ingress.responses.tools import ToolNames, custom_input, tool_names

Json = dict[str, Any]

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Hub finish reasons that leave a response `incomplete`, with the reason the API gives."""
_PREFIXES = {"function": "fc", "custom": "ctc", "tool_search": "tsc"}


def to_response(
    completion: Json,
    *,
    request: Json,
    response_id: str,
    created_at: int,
    history: list[Json] | None = None,
) -> Json:
    """The Responses object for a hub `chat.completion` answering `request` (the client's
    Responses body). `history` (the items of earlier turns) only matters when tools came
    from an earlier turn's tool search."""
    choice = _first_choice(completion)
    message = as_dict(choice.get("message"))
    names = tool_names(request, history)
    output = output_items(message, response_id, names)
    reason = INCOMPLETE_REASONS.get(str(choice.get("finish_reason")))
    if reason is not None and output:
        mark_incomplete(output[-1])
    return response_object(
        request,
        response_id,
        created_at,
        status="incomplete" if reason else "completed",
        output=output,
        usage=responses_usage(completion.get("usage")),
        incomplete_reason=reason,
    )


def _first_choice(completion: Json) -> Json:
    choices = completion.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def output_items(message: Json, response_id: str, names: ToolNames) -> list[Json]:
    out: list[Json] = []
    blocks = [b for b in message.get("thinking_blocks") or () if isinstance(b, dict)]
    reasoning = message.get("reasoning_content")
    if blocks or (isinstance(reasoning, str) and reasoning):
        texts = [str(b.get("thinking")) for b in blocks if b.get("thinking")]
        if not blocks:
            texts = [str(reasoning)]
        out.append(reasoning_item(item_id(response_id, "rs", 0), texts, blocks))
    calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
    text, refusal = _content_text(message.get("content")), message.get("refusal")
    if text or refusal or not (calls or out):
        refusal = refusal if isinstance(refusal, str) else None
        out.append(message_item(item_id(response_id, "msg", len(out)), text, refusal))
    for call in calls:
        function = as_dict(call.get("function"))
        name, arguments = str(function.get("name") or ""), str(function.get("arguments") or "")
        call_id = str(call.get("id") or default_call_id(response_id, len(out)))
        out.append(call_item(response_id, len(out), call_id, name, arguments, names))
    return out


def default_call_id(response_id: str, index: int) -> str:
    """For a backend that gave a tool call no id."""
    return f"call_{response_id.removeprefix('resp_')}_{index}"


def as_dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text") or "") for p in parts)
    return ""


# ------------------------------------------------------------------------------- items


def item_id(response_id: str, prefix: str, index: int) -> str:
    """`msg_<response id without resp_>_<output index>`: unique, and the same when streamed."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def reasoning_item(
    id_: str, texts: list[str], blocks: list[Json], status: str | None = None
) -> Json:
    item: Json = {
        "id": id_,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text} for text in texts],
        "encrypted_content": mw1.encode(blocks) if mw1.carries_state(blocks) else None,
    }
    if status is not None:
        item["status"] = status
    return item


def message_item(
    id_: str, text: str, refusal: str | None = None, status: str = "completed"
) -> Json:
    content: list[Json] = []
    if text or not refusal:
        content.append(output_text(text))
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": id_, "type": "message", "role": "assistant", "status": status, "content": content}


def output_text(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(
    response_id: str,
    index: int,
    call_id: str,
    name: str,
    arguments: str,
    names: ToolNames,
    status: str = "completed",
) -> Json:
    """The item for a hub tool call: a function, custom tool or tool search call."""
    tool = names.lookup(name)
    id_ = item_id(response_id, _PREFIXES[tool.kind], index)
    if tool.kind == "custom":
        item: Json = {"id": id_, "type": "custom_tool_call", "call_id": call_id,
                      "name": tool.name, "input": custom_input(arguments)}
    elif tool.kind == "tool_search":
        item = {"id": id_, "type": "tool_search_call", "call_id": call_id,
                "arguments": _json_object(arguments), "execution": "client", "status": status}
    else:
        item = {"id": id_, "type": "function_call", "call_id": call_id, "name": tool.name,
                "arguments": arguments, "status": status}
    if tool.namespace:
        item["namespace"] = tool.namespace
    return item


def _json_object(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return {"query": arguments}


def mark_incomplete(item: Json) -> None:
    """The item a cut-off answer ended in: the API marks it incomplete."""
    if item.get("type") in ("message", "function_call", "tool_search_call"):
        item["status"] = "incomplete"


# --------------------------------------------------------------------- the response object


def response_object(
    request: Json,
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[Json],
    usage: Json | None = None,
    incomplete_reason: str | None = None,
    error: Json | None = None,
) -> Json:
    """A `response` object; the request's parameters are echoed, with the API's defaults."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "output": output,
        "usage": usage,
        **echo(request),
    }


def echo(request: Json) -> Json:
    reasoning, text = as_dict(request.get("reasoning")), as_dict(request.get("text"))
    return {
        "model": request.get("model"),
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": request.get("safety_identifier"),
        "service_tier": request.get("service_tier") or "default",
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": {
            "format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity") or "medium",
        },
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_logprobs": request.get("top_logprobs") or 0,
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation") or "disabled",
        "user": request.get("user"),
    }


def responses_usage(usage: Any) -> Json | None:
    """Hub usage (OpenAI chat semantics plus the cache-write extension) as Responses usage."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    prompt_details = as_dict(usage.get("prompt_tokens_details"))
    completion_details = as_dict(usage.get("completion_tokens_details"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _int(prompt_details.get("cached_tokens")),
            "cache_write_tokens": _int(usage.get("cache_creation_input_tokens")),
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": _int(completion_details.get("reasoning_tokens"))
        },
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def failure(error: GatewayError) -> Json:
    """The `error` of a failed response; the API allows only a few codes there."""
    if error.status == 429:
        code = "rate_limit_exceeded"
    elif error.is_client_error:
        code = "invalid_prompt"
    else:
        code = "server_error"
    return {"code": code, "message": error.message}
