"""A hub chat-completions request as a Responses API create body (`POST /v1/responses`).

For an OpenAI model served only by the Responses API. Messages become input items (system
and developer messages keep their role), assistant tool calls `function_call` items, tool
messages `function_call_output` items, and the OpenAI reasoning a previous answer carried
(the hub extension `reasoning_items`, see `response.py`) goes back as `reasoning` items.
Nothing is stored upstream (`store: false`); when reasoning is asked for, its encrypted
content is (`include: ["reasoning.encrypted_content"]`), so a later turn can send it back.
Chat parameters the Responses API has no place for are refused with a 400 that names them
(`stop`, `n` > 1, audio) or dropped where that is harmless (`seed`, penalties, `logit_bias`).
"""

from __future__ import annotations

from typing import Any

from modelway.errors import bad_request

Json = dict[str, Any]

REASONING_ITEMS = "reasoning_items"
"""Hub assistant-message extension: OpenAI reasoning items, `[{"id", "encrypted_content"}]`."""
_PASSED = (
    "model", "temperature", "top_p", "user", "metadata", "parallel_tool_calls",
    "prompt_cache_key", "safety_identifier", "service_tier", "top_logprobs",
)
_REFUSED = {
    "stop": "stop sequences",
    "audio": "audio output",
    "modalities": "output modalities",
    "prediction": "predicted outputs",
    "functions": "legacy functions (use tools)",
    "function_call": "legacy function_call (use tool_choice)",
}
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def as_dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def to_responses_request(chat: Json) -> Json:
    """The Responses create body for a hub chat request; a 400 for what cannot be carried."""
    _refuse(chat)
    body: Json = {name: chat[name] for name in _PASSED if chat.get(name) is not None}
    body["input"] = _input(chat.get("messages"))
    body["store"] = False
    if chat.get("tools"):
        body["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(chat["tools"])]
    if chat.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(chat["tool_choice"])
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if limit is not None:
        body["max_output_tokens"] = limit
    text = _text(chat)
    if text:
        body["text"] = text
    effort = _effort(chat)
    if effort is not None:
        body["reasoning"] = {"effort": effort} if effort == "none" else {
            "effort": effort, "summary": "auto"
        }
        if effort != "none":
            body["include"] = ["reasoning.encrypted_content"]
    if chat.get("stream"):
        body["stream"] = True
    return body


def _refuse(chat: Json) -> None:
    for name, what in _REFUSED.items():
        if chat.get(name) not in (None, [], ""):
            raise bad_request(
                f"{what} ('{name}') cannot be sent to this backend, which speaks only the "
                "Responses API",
                param=name,
                code="unsupported_parameter",
            )
    if chat.get("n") not in (None, 1):
        raise bad_request(
            "this backend (Responses API) gives one answer per request: 'n' must be 1",
            param="n",
            code="unsupported_parameter",
        )


# ------------------------------------------------------------------------------ messages


def _input(messages: Any) -> list[Json]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", param="messages")
    items: list[Json] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object", param=where)
        items.extend(_message_items(message, where))
    return items


def _message_items(message: Json, where: str) -> list[Json]:
    role = message.get("role")
    if role in ("system", "developer", "user"):
        return [{"type": "message", "role": role, "content": _content(message, where)}]
    if role == "assistant":
        return _assistant_items(message, where)
    if role == "tool":
        return [_tool_output(message, where)]
    raise bad_request(
        f"'{where}.role' {role!r} cannot be sent to this backend", param=f"{where}.role"
    )


def _content(message: Json, where: str) -> str | list[Json]:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise bad_request(f"'{where}.content' must be a string or a list", param=f"{where}.content")
    return [_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]


def _part(part: Any, where: str) -> Json:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return {"type": "input_text", "text": str(part.get("text") or "")}
    if kind == "image_url":
        image = part.get("image_url")
        image = image if isinstance(image, dict) else {"url": image}
        out: Json = {"type": "input_image", "image_url": image.get("url")}
        out["detail"] = image.get("detail") or "auto"
        return out
    if kind == "file":
        file = as_dict(part.get("file"))
        keys = ("file_data", "file_id", "filename")
        return {"type": "input_file", **{k: file[k] for k in keys if file.get(k)}}
    raise bad_request(
        f"'{where}': {kind!r} parts cannot be sent to this backend", param=f"{where}.type"
    )


def _assistant_items(message: Json, where: str) -> list[Json]:
    items: list[Json] = [
        {"type": "reasoning", "id": r["id"], "summary": [],
         "encrypted_content": r["encrypted_content"]}
        for r in message.get(REASONING_ITEMS) or ()
        if isinstance(r, dict) and isinstance(r.get("id"), str) and r.get("encrypted_content")
    ]
    text = _text_of(message.get("content")) or message.get("refusal") or ""
    if text:
        items.append({"type": "message", "role": "assistant", "content": text})
    for index, call in enumerate(message.get("tool_calls") or ()):
        items.append(_call_item(call, f"{where}.tool_calls[{index}]"))
    return items


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or p.get("refusal") or "") for p in content if isinstance(p, dict)
        )
    return content if isinstance(content, str) else ""


def _call_item(call: Any, where: str) -> Json:
    if not isinstance(call, dict) or not isinstance(call.get("id"), str):
        raise bad_request(f"'{where}' needs an id", param=f"{where}.id")
    if call.get("type") == "custom" and isinstance(call.get("custom"), dict):
        custom = call["custom"]
        return {"type": "custom_tool_call", "call_id": call["id"],
                "name": custom.get("name"), "input": custom.get("input") or ""}
    function = as_dict(call.get("function"))
    if not isinstance(function.get("name"), str):
        raise bad_request(f"'{where}' needs a function name", param=f"{where}.function.name")
    return {"type": "function_call", "call_id": call["id"], "name": function["name"],
            "arguments": function.get("arguments") or "{}"}


def _tool_output(message: Json, where: str) -> Json:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"'{where}' needs a tool_call_id", param=f"{where}.tool_call_id")
    content = message.get("content")
    output: str | list[Json]
    if isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") != "text" for p in content
    ):
        output = [_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    else:
        output = _text_of(content)
    return {"type": "function_call_output", "call_id": call_id, "output": output}


# --------------------------------------------------------------------- tools and settings


def _tool(tool: Any, where: str) -> Json:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind == "function" and isinstance(tool.get("function"), dict):
        function = tool["function"]
        out: Json = {"type": "function", "name": function.get("name")}
        for key in ("description", "parameters", "strict"):
            if function.get(key) is not None:
                out[key] = function[key]
        out.setdefault("parameters", {"type": "object", "properties": {}})
        return out
    if kind == "custom" and isinstance(tool.get("custom"), dict):
        return {"type": "custom", **tool["custom"]}
    raise bad_request(f"'{where}': {kind!r} tools cannot be sent to this backend", param=where)


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice
    if not isinstance(choice, dict):
        raise bad_request("tool_choice must be a string or an object", param="tool_choice")
    kind = choice.get("type")
    named = as_dict(choice.get(kind))
    if kind in ("function", "custom"):
        return {"type": kind, "name": named.get("name")}
    if kind == "allowed_tools":
        tools = [
            {"type": t.get("type"), "name": as_dict(t.get(t.get("type"))).get("name")}
            for t in named.get("tools") or () if isinstance(t, dict)
        ]
        return {"type": "allowed_tools", "mode": named.get("mode") or "auto", "tools": tools}
    raise bad_request(f"tool_choice type {kind!r} is not supported", param="tool_choice.type")


def _text(chat: Json) -> Json:
    out: Json = {}
    fmt = chat.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = as_dict(fmt.get("json_schema"))
        out["format"] = {"type": "json_schema", **schema}
    elif isinstance(fmt, dict) and fmt.get("type") in ("json_object", "text"):
        out["format"] = {"type": fmt["type"]}
    if chat.get("verbosity") is not None:
        out["verbosity"] = chat["verbosity"]
    return out


def _effort(chat: Json) -> str | None:
    """`reasoning_effort`, or one read from a hub `thinking` budget."""
    effort = chat.get("reasoning_effort")
    if effort in _EFFORTS:
        return str(effort)
    thinking = chat.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    budget = budget if isinstance(budget, int) else 0
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
