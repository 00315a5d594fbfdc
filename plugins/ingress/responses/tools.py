"""Responses tools as hub (chat-completions) function tools, and the way back.

Chat backends know only function tools, so every tool the client runs itself becomes one:
`function` as is; `custom` (free-form input, e.g. Codex's `apply_patch`) as a function with
one string parameter `input`; `tool_search` run by the client as a function; the tools of a
`namespace` as functions named `<namespace>__<name>`. `ToolNames` remembers which Responses
tool a chat function name stands for, so an answer's tool calls become the right items.
Built-in tools (web search, file search, code interpreter, computer use, ...) run on
OpenAI's side: a translated backend cannot run them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from modelway.errors import GatewayError, bad_request
from modelway.plugins.ingress.responses.schema import (
    CustomTool,
    FunctionTool,
    NamedToolChoice,
    NamespaceTool,
    Tool,
    ToolSearchTool,
)

BUILTIN_TOOLS = frozenset(
    {
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "computer",
        "computer_use",
        "computer_use_preview",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "programmatic_tool_calling",
    }
)
"""Tool types that OpenAI's servers run (or that only OpenAI's models are trained to call)."""
OPTIONAL_BUILTINS = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)
"""Built-in tools that only offer the model an extra ability it may leave unused: a
translated backend leaves them out instead of refusing the request. Codex CLI declares web
search on every request, so refusing it would refuse Codex altogether; a tool_choice that
forces one is still a 400."""
CLIENT_TOOLS = frozenset({"function", "custom", "namespace", "tool_search"})
NAMESPACE_SEPARATOR = "__"
BuiltinPolicy = Literal["reject", "drop"]
Kind = Literal["function", "custom", "tool_search"]


@dataclass(frozen=True, slots=True)
class ToolName:
    """What a chat function name stands for on the Responses side."""

    kind: Kind
    name: str
    namespace: str | None = None


class ToolNames:
    """Chat function names and the Responses tools they stand for, both ways."""

    def __init__(self) -> None:
        self._by_chat: dict[str, ToolName] = {}

    def add(self, kind: Kind, name: str, namespace: str | None = None) -> str:
        chat = chat_name(name, namespace)
        self._by_chat[chat] = ToolName(kind, name, namespace)
        return chat

    def lookup(self, chat: str) -> ToolName:
        """The tool behind a chat name; an unknown name is taken as a plain function."""
        return self._by_chat.get(chat) or ToolName("function", chat)

    def __contains__(self, chat: object) -> bool:
        return chat in self._by_chat


def chat_name(name: str, namespace: str | None = None) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def builtin_error(kind: str, param: str) -> GatewayError:
    return bad_request(
        f"the tool type '{kind}' is a built-in tool that OpenAI runs; this backend cannot "
        "run it (remove the tool, or route the request to an OpenAI backend)",
        param=param,
        code="unsupported_tool",
    )


def check_tool_types(tools: Any, param: str, policy: BuiltinPolicy) -> list[Any]:
    """The tools to translate: unknown types are a 400; built-in ones are dropped with
    `policy="drop"`, and with `"reject"` a 400 unless they are optional (web search)."""
    if not isinstance(tools, list):
        return tools  # the model reports the wrong type
    kept = []
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        kind = kind if isinstance(kind, str) else None
        where = f"{param}[{index}]"
        if _is_builtin(tool):
            if policy == "reject" and kind not in OPTIONAL_BUILTINS:
                raise builtin_error(str(kind), f"{where}.type")
            continue
        if kind not in CLIENT_TOOLS:
            raise bad_request(
                f"unknown tool type {kind!r} at '{where}'",
                param=f"{where}.type",
                code="invalid_value",
            )
        if kind == "namespace":
            tool = {**tool, "tools": check_tool_types(tool.get("tools"), f"{where}.tools", policy)}
        kept.append(tool)
    return kept


def _is_builtin(tool: Any) -> bool:
    if not isinstance(tool, dict):
        return False
    kind = tool.get("type")
    if not isinstance(kind, str):
        return False
    return kind in BUILTIN_TOOLS or (kind == "tool_search" and tool.get("execution") != "client")


# ---------------------------------------------------------------------- tools -> chat tools


def chat_tools(tools: list[Tool], names: ToolNames) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, NamespaceTool):
            out.extend(_one_tool(inner, names, tool.name) for inner in tool.tools)
        else:
            out.append(_one_tool(tool, names, None))
    return out


def _one_tool(
    tool: FunctionTool | CustomTool | ToolSearchTool, names: ToolNames, namespace: str | None
) -> dict[str, Any]:
    if isinstance(tool, FunctionTool):
        function = _function(names.add("function", tool.name, namespace), tool.description)
        function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        if tool.strict is not None:
            function["strict"] = tool.strict
    elif isinstance(tool, CustomTool):
        function = _function(names.add("custom", tool.name, namespace), _custom_text(tool))
        function["parameters"] = CUSTOM_PARAMETERS
    else:
        function = _function(names.add("tool_search", "tool_search"), tool.description)
        function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


CUSTOM_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's free-form input."}},
    "required": ["input"],
    "additionalProperties": False,
}


def _function(name: str, description: str | None) -> dict[str, Any]:
    return {"name": name, "description": description} if description else {"name": name}


def _custom_text(tool: CustomTool) -> str | None:
    """The description, plus the grammar the input must follow (the model reads it)."""
    fmt = tool.format
    if fmt is None or fmt.type != "grammar" or not fmt.definition:
        return tool.description
    rule = (
        f"Put the raw input (not JSON) in `input`; it must match this {fmt.syntax or ''} "
        f"grammar:\n{fmt.definition}"
    )
    return f"{tool.description}\n\n{rule}" if tool.description else rule


def custom_input(arguments: str) -> str:
    """A custom tool's input from the arguments of the function call that stands for it."""
    try:
        data = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(data, dict) and isinstance(data.get("input"), str):
        return data["input"]
    return arguments


def custom_arguments(text: str) -> str:
    return json.dumps({"input": text}, ensure_ascii=False)


# --------------------------------------------------------------------------- tool_choice


def chat_tool_choice(
    choice: str | NamedToolChoice | None, tools: list[dict[str, Any]], names: ToolNames
) -> tuple[Any, list[dict[str, Any]]]:
    """The chat `tool_choice` (None: leave it out) and the tools it leaves available."""
    if choice is None or isinstance(choice, str):
        return choice, tools
    if choice.type in ("function", "custom"):
        return {"type": "function", "function": {"name": _known(choice, names)}}, tools
    if choice.type == "allowed_tools":
        allowed = {_allowed_name(tool) for tool in choice.tools or ()}
        kept = [tool for tool in tools if tool["function"]["name"] in allowed]
        return (choice.mode or "auto") if kept else "none", kept
    if choice.type in BUILTIN_TOOLS or choice.type.startswith("web_search"):
        raise builtin_error(choice.type, "tool_choice.type")
    raise bad_request(
        f"unknown tool_choice type {choice.type!r}",
        param="tool_choice.type",
        code="invalid_value",
    )


def _known(choice: NamedToolChoice, names: ToolNames) -> str:
    name = chat_name(choice.name or "", getattr(choice, "namespace", None))
    if name not in names:
        raise bad_request(
            f"tool_choice names the tool {choice.name!r}, which is not in 'tools'",
            param="tool_choice.name",
            code="invalid_value",
        )
    return name


def _allowed_name(tool: dict[str, Any]) -> str:
    name = tool.get("name")
    if not isinstance(name, str):
        raise bad_request(
            "allowed_tools lists a tool without a name (only function and custom tools can "
            "be allowed on this backend)",
            param="tool_choice.tools",
            code="invalid_value",
        )
    return chat_name(name, tool.get("namespace"))


# ------------------------------------------------------------------- names from a request


def tool_names(request: dict[str, Any], history: list[Any] | None = None) -> ToolNames:
    """The chat names a (validated) Responses request's tools were given, for its answer;
    tools that `additional_tools` or `tool_search_output` items brought count too."""
    names = ToolNames()
    tools = list(request.get("tools") or ())
    items: list[Any] = list(history or ())
    if isinstance(request.get("input"), list):
        items.extend(request["input"])
    for item in items:
        if (
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and item["type"] in _TOOL_ITEMS
        ):
            tools.extend(item.get("tools") or ())
    for tool in tools:
        _name_tool(tool, names, None)
    return names


_TOOL_ITEMS = frozenset({"additional_tools", "tool_search_output"})


def _name_tool(tool: Any, names: ToolNames, namespace: str | None) -> None:
    if not isinstance(tool, dict):
        return
    kind, name = tool.get("type"), tool.get("name")
    if kind == "namespace" and isinstance(name, str):
        for inner in tool.get("tools") or ():
            _name_tool(inner, names, name)
    elif kind in ("function", "custom") and isinstance(name, str):
        names.add(kind, name, namespace)
    elif kind == "tool_search" and tool.get("execution") == "client":
        names.add("tool_search", "tool_search")
