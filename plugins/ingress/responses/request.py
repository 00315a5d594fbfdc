"""`POST /v1/responses` bodies: validation, and translation to a hub chat-completions body.

`to_chat_request` turns a Responses request, with the items its `previous_response_id`
stands for already resolved by the caller, into the hub (chat-completions) body any backend
can take; `input_items` gives the input as the items `GET /v1/responses/{id}/input_items`
lists. Both raise only `GatewayError` (400, with `param` the JSON path of the problem). Pure:
no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from modelway.errors import GatewayError, bad_request
from modelway.plugins.ingress.anthropic.schema import error_path
from modelway.plugins.ingress.responses.items import Located, added_tools, chat_messages
from modelway.plugins.ingress.responses.schema import (
    ITEM_TYPES,
    Effort,
    Item,
    ResponsesRequest,
    TextConfig,
    Tool,
)
from modelway.plugins.ingress.responses.tools import (
    BuiltinPolicy,
    ToolNames,
    chat_tool_choice,
    chat_tools,
    check_tool_types,
)

Json = dict[str, Any]
_ITEM = TypeAdapter(Item)
_TOOLS = TypeAdapter(list[Tool])

BUILTIN_ITEM_TYPES = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "compaction",
        "compaction_trigger",
        "program",
        "program_output",
        "configuration_update",
    }
)
"""Item types of built-in tools and server features that a translated backend cannot use."""

THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}
"""`reasoning.effort` as a hub `thinking` budget (tokens), for backends that take one."""
MIN_THINKING_BUDGET = 1024
_PASSED = ("temperature", "top_p", "metadata", "user")
_PASSED_RAW = ("prompt_cache_key", "safety_identifier", "service_tier")


def to_chat_request(
    body: Any,
    history: list[Json],
    *,
    builtin_tools: BuiltinPolicy = "reject",
    items_by_id: Mapping[str, Json] | None = None,
) -> Json:
    """The hub chat-completions body for a Responses request.

    `history` holds the items `previous_response_id` stands for (input and output items of
    the earlier responses, in order). An `item_reference` is resolved against the input,
    `history` and `items_by_id` (stored items the caller can look up by id). Built-in tools
    are a 400 (`builtin_tools="reject"`, except web search, which is left out: see
    `OPTIONAL_BUILTINS`) or all left out (`"drop"`); a tool_choice that forces one is a 400
    either way.
    """
    request = validate(body, builtin_tools)
    known = {**(items_by_id or {}), **_by_id(history)}
    items = _history(history) + _input(request, body, known)
    names = ToolNames()
    tools = chat_tools(request.tools or [], names)
    tools = _unique(tools + chat_tools(_added(items, builtin_tools), names))
    chat: Json = {"model": request.model, "messages": _messages(request, items)}
    choice, tools = chat_tool_choice(request.tool_choice, tools, names)
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if request.parallel_tool_calls is not None:
            chat["parallel_tool_calls"] = request.parallel_tool_calls
    chat.update(_settings(request, body))
    return chat


def validate(body: Any, builtin_tools: BuiltinPolicy = "reject") -> ResponsesRequest:
    """The validated request; item and tool types are checked first, for clear errors."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_body")
    data = dict(body)
    if isinstance(data.get("input"), list):
        for index, item in enumerate(data["input"]):
            _check_item(item, f"input[{index}]")
    if "tools" in data:
        data["tools"] = check_tool_types(data["tools"], "tools", builtin_tools)
    try:
        request = ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, data) from None
    _check_unsupported(data)
    return request


def _check_item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        raise bad_request(
            f"'{where}' must be an object (an input item), not {type(item).__name__}",
            param=where,
            code="invalid_type",
        )
    kind = item.get("type", "message")
    if isinstance(kind, str) and kind in ITEM_TYPES:
        return
    if isinstance(kind, str) and kind in BUILTIN_ITEM_TYPES:
        raise bad_request(
            f"'{where}' is a {kind} item, which belongs to a built-in tool or server feature "
            "that this backend cannot run",
            param=f"{where}.type",
            code="unsupported_item_type",
        )
    raise bad_request(
        f"unknown item type {kind!r} at '{where}'", param=f"{where}.type", code="invalid_value"
    )


def _check_unsupported(data: Json) -> None:
    for name, what in (
        ("conversation", "conversations"),
        ("prompt", "stored prompts"),
    ):
        if data.get(name) is not None:
            raise bad_request(
                f"{what} ('{name}') are not supported by this gateway",
                param=name,
                code="unsupported_parameter",
            )
    if data.get("background") is True:
        raise bad_request(
            "background responses are not supported by this gateway",
            param="background",
            code="unsupported_parameter",
        )


def invalid(exc: ValidationError, data: Any, prefix: str = "") -> GatewayError:
    """The most specific problem (the deepest path), with the JSON path as `param`."""
    errors = exc.errors(include_url=False)
    found = [(_brackets(error_path(e["loc"], data, e["type"] == "missing")), e) for e in errors]
    path, error = max(found, key=lambda pair: pair[0].count(".") + pair[0].count("["))
    if error["type"].startswith("union_tag_"):
        path += ".type"  # the type of a part or tool: name the field that is wrong
    if prefix:
        path = prefix.rstrip(".") if path == "body" else prefix + path
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    code = "missing_required_parameter" if error["type"] == "missing" else "invalid_value"
    if error["type"].endswith("_type"):
        code = "invalid_type"
    return bad_request(f"invalid value for '{path}': {error['msg']}{more}", param=path, code=code)


def _brackets(dotted: str) -> str:
    """`input.3.content.0` as `input[3].content[0]`."""
    out = ""
    for part in dotted.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


# ------------------------------------------------------------------------------- items


def _history(history: list[Json]) -> list[Located]:
    out: list[Located] = []
    for index, item in enumerate(history):
        where = f"history[{index}]"
        try:
            _check_item(item, where)
            out.append((where, _ITEM.validate_python(item)))
        except (GatewayError, ValidationError) as exc:
            raise bad_request(
                f"an item of the conversation that previous_response_id continues is not "
                f"valid ({exc})",
                param="previous_response_id",
                code="invalid_value",
            ) from None
    return out


def _by_id(items: Any) -> dict[Any, Json]:
    return {item.get("id"): item for item in items or () if isinstance(item, dict)}


def _input(request: ResponsesRequest, body: Json, known: dict[Any, Json]) -> list[Located]:
    if isinstance(request.input, str):
        text = {"type": "message", "role": "user", "content": request.input}
        return [("input", _ITEM.validate_python(text))]
    out: list[Located] = []
    for index, item in enumerate(request.input):
        where = f"input[{index}]"
        if item.type == "item_reference":
            item = _resolve(item.id, known, where)
        else:
            known[getattr(item, "id", None)] = body["input"][index]
        out.append((where, item))
    return out


def _resolve(item_id: str, known: dict[Any, Json], where: str) -> Any:
    item = known.get(item_id)
    if item is None:
        raise bad_request(
            f"'{where}' refers to the item '{item_id}', which is not in this conversation",
            param=f"{where}.id",
            code="item_not_found",
        )
    return _ITEM.validate_python(item)


def _messages(request: ResponsesRequest, items: list[Located]) -> list[Json]:
    messages = chat_messages(items)
    if request.instructions:
        messages.insert(0, {"role": "system", "content": request.instructions})
    if not messages:
        raise bad_request("the request has no input", param="input", code="missing_input")
    return messages


def _added(items: list[Located], builtin_tools: BuiltinPolicy) -> list[Any]:
    tools: list[Any] = []
    for where, raw in added_tools(items):
        kept = check_tool_types(raw, where, builtin_tools)
        try:
            tools.extend(_TOOLS.validate_python(kept))
        except ValidationError as exc:
            raise invalid(exc, kept, f"{where}") from None
    return tools


def _unique(tools: list[Json]) -> list[Json]:
    """One tool per name (a tool search may list a tool again); the last definition wins."""
    by_name = {tool["function"]["name"]: tool for tool in tools}
    return list(by_name.values())


# ---------------------------------------------------------------------------- settings


def _settings(request: ResponsesRequest, body: Json) -> Json:
    out: Json = {}
    if request.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    for name in _PASSED:
        if getattr(request, name) is not None:
            out[name] = getattr(request, name)
    for name in _PASSED_RAW:
        if isinstance(body.get(name), str):
            out[name] = body[name]
    if request.max_output_tokens is not None:
        out["max_completion_tokens"] = request.max_output_tokens
    if request.top_logprobs:
        out.update(logprobs=True, top_logprobs=request.top_logprobs)
    if request.text is not None:
        out.update(_text(request.text))
    effort = request.reasoning.effort if request.reasoning else None
    if effort is not None:
        out.update(_reasoning(effort, request.max_output_tokens))
    return out


def _text(text: TextConfig) -> Json:
    out: Json = {}
    if text.verbosity is not None:
        out["verbosity"] = text.verbosity
    fmt = text.format
    if fmt is None or fmt.type == "text":
        return out
    if fmt.type == "json_object":
        out["response_format"] = {"type": "json_object"}
        return out
    schema: Json = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.description is not None:
        schema["description"] = fmt.description
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    out["response_format"] = {"type": "json_schema", "json_schema": schema}
    return out


def _reasoning(effort: Effort, max_output_tokens: int | None) -> Json:
    """`reasoning_effort`, plus a `thinking` budget that fits under the output limit."""
    out: Json = {"reasoning_effort": effort}
    if effort == "none":
        out["thinking"] = {"type": "disabled"}
        return out
    budget = THINKING_BUDGETS[effort]
    if max_output_tokens is not None:
        budget = min(budget, max_output_tokens - 1)
    if budget >= MIN_THINKING_BUDGET:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return out


# ------------------------------------------------------------------------- input items


def input_items(body: Any, items_by_id: Mapping[str, Json] | None = None) -> list[Json]:
    """The request's input as Responses items with ids, as `GET .../input_items` lists them
    (item references resolved against the input and `items_by_id`). Raises as
    `to_chat_request` does."""
    request = validate(body, "drop")
    raw = body["input"] if isinstance(body.get("input"), list) else [
        {"role": "user", "content": request.input}
    ]
    known = {**(items_by_id or {}), **_by_id(raw)}
    return [_listed(item, known) for item in raw]


def _listed(item: Json, known: dict[Any, Json]) -> Json:
    reference = item.get("id") if item.get("type") == "item_reference" else None
    if isinstance(reference, str) and reference in known:
        item = known[reference]
    kind = item.get("type", "message")
    out = {"type": kind, **item}
    out.setdefault("id", new_id(_ID_PREFIXES.get(kind, "item")))
    if kind == "message":
        out["content"] = _listed_content(item.get("role"), item.get("content"))
    if kind in _STATUS_TYPES:
        out.setdefault("status", "completed")
    if kind.startswith("tool_search"):
        out.setdefault("execution", "client")
    return out


_ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
    "tool_search_call": "tsc",
    "tool_search_output": "tso",
    "additional_tools": "at",
}
_STATUS_TYPES = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "tool_search_call",
        "tool_search_output",
    }
)


def _listed_content(role: Any, content: Any) -> list[Json]:
    if role == "assistant":
        parts = [{"type": "output_text", "text": content}] if isinstance(content, str) else [
            {**p, "type": "output_text"} if p.get("type") == "input_text" else p
            for p in content
        ]
        return [{"annotations": [], **p} if p["type"] == "output_text" else p for p in parts]
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    return list(content)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"
