"""A validated Anthropic Messages request as a canonical (OpenAI chat-completions) body. Pure.

What the chat shape cannot say travels in the hub's extension fields (`modelway.hubext`):
top-level fields the gateway does not know as `anthropic_unknown`, content blocks of types it
does not know as `anthropic_block` parts in their place (an assistant message holding one
carries its text blocks the same way, with their citations).
"""

from __future__ import annotations

from typing import Any

from modelway.errors import bad_request
from modelway.hubext import (
    ANTHROPIC_BLOCK,
    ANTHROPIC_FIELDS,
    ANTHROPIC_TOOLS,
    ANTHROPIC_UNKNOWN,
    REASONING_CONTENT,
    SERVICE_TIER,
    THINKING,
    THINKING_BLOCKS,
    TOP_K,
    effort_from_thinking,
)
from modelway.plugins.ingress.anthropic.schema import (
    Base64Source,
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    OtherBlock,
    OutputFormat,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolParam,
    ToolResultBlock,
    ToolUseBlock,
)
from modelway.providerkit import dumps


def split_own_tools(data: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The request without Anthropic's own tools (server tools such as `web_search_20250305`,
    built-in ones such as `bash_20250124`: any `type` but `custom`), and those tools."""
    tools = data.get("tools")
    if not isinstance(tools, list):
        return data, []
    own = [t for t in tools if isinstance(t, dict) and t.get("type") not in (None, "custom")]
    if not own:
        return data, []
    return {**data, "tools": [t for t in tools if not any(t is o for o in own)]}, own


_TIERS = {"auto": "auto", "standard_only": "default"}
KNOWN_FIELDS = frozenset({*MessagesRequest.model_fields, *ANTHROPIC_FIELDS, SERVICE_TIER})
"""The top-level fields the translation reads; every other one is `anthropic_unknown`."""


def hub_extras(data: dict[str, Any], own_tools: list[Any]) -> dict[str, Any]:
    """What the hub carries beside the chat shape: `service_tier` (as OpenAI's value),
    Anthropic's own fields (`context_management`, `mcp_servers`, `container`, the top-level
    `cache_control`) and tools, and the fields the gateway does not know, as sent."""
    out = {name: data[name] for name in ANTHROPIC_FIELDS if data.get(name) is not None}
    tier = data.get(SERVICE_TIER)
    if tier is not None:
        out[SERVICE_TIER] = _TIERS.get(tier, tier) if isinstance(tier, str) else tier
    if own_tools:
        out[ANTHROPIC_TOOLS] = own_tools
    unknown = {name: value for name, value in data.items() if name not in KNOWN_FIELDS}
    if unknown:
        out[ANTHROPIC_UNKNOWN] = unknown
    return out


def anthropic_part(block: OtherBlock | TextBlock) -> dict[str, Any]:
    """A block the chat shape cannot say, as a hub part that carries it as sent."""
    return {"type": ANTHROPIC_BLOCK, ANTHROPIC_BLOCK: block.model_dump(exclude_unset=True)}


def to_openai_request(request: MessagesRequest) -> dict[str, Any]:
    """The canonical (OpenAI chat-completions) body for an Anthropic Messages request."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": openai_messages(request),
        "max_tokens": request.max_tokens,
    }
    for name in ("temperature", "top_p", TOP_K):
        if getattr(request, name) is not None:
            body[name] = getattr(request, name)
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences)
    if request.tools:
        body["tools"] = [openai_tool(tool) for tool in request.tools]
        body.update(openai_tool_choice(request.tool_choice))
    if request.metadata and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    if request.output_config and request.output_config.format:
        body["response_format"] = openai_response_format(request.output_config.format)
    body.update(reasoning(request))
    if request.stream:
        body["stream"] = True
    return body


def openai_response_format(output: OutputFormat) -> dict[str, Any]:
    """Structured output: OpenAI wants the schema named; Anthropic's has no name and is
    always strict (constrained decoding)."""
    schema = {"name": "output", "schema": output.schema_, "strict": True}
    return {"type": "json_schema", "json_schema": schema}


_EFFORTS = frozenset({"low", "medium", "high", "xhigh"})


def reasoning(request: MessagesRequest) -> dict[str, Any]:
    """The hub's `thinking` (as sent) and the `reasoning_effort` it comes nearest to."""
    out: dict[str, Any] = {}
    effort = request.output_config.effort if request.output_config else None
    if request.thinking is not None:
        out[THINKING] = request.thinking
        thought = effort_from_thinking(request.thinking)
        effort = effort if effort in _EFFORTS else thought
        effort = None if thought == "none" else effort
    if effort in _EFFORTS:
        out["reasoning_effort"] = "high" if effort == "xhigh" else effort
    return out


def openai_messages(request: MessagesRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": system_text(request.system)})
    for message in request.messages:
        if message.role == "user":
            out.extend(user_messages(message.content))
        else:
            out.append(assistant_message(message.content))
    return out


def system_text(system: str | list[TextBlock]) -> str:
    return system if isinstance(system, str) else "\n".join(block.text for block in system)


def user_messages(content: str | list[Any]) -> list[dict[str, Any]]:
    """Tool results first (OpenAI wants them right after the assistant's calls), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ToolResultBlock):
            text, images = tool_result_content(block)
            tools.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
            parts.extend(images)
        elif isinstance(block, TextBlock | ImageBlock | DocumentBlock):
            parts.append(content_part(block))
        elif isinstance(block, OtherBlock):
            parts.append(anthropic_part(block))
    if parts:
        tools.append({"role": "user", "content": parts_content(parts)})
    return tools


def tool_result_content(
    block: ToolResultBlock,
) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """A tool result's text, and its images (OpenAI tool messages carry text only). A result
    holding blocks the chat shape cannot say (`search_result` ...) keeps its text and those
    blocks as parts, in order."""
    if block.content is None or isinstance(block.content, str):
        return block.content or "", []
    files = (ImageBlock, DocumentBlock)
    moved = [content_part(part) for part in block.content if isinstance(part, files)]
    kept = [part for part in block.content if not isinstance(part, files)]
    if any(isinstance(part, OtherBlock) for part in kept):
        return [_tool_part(part) for part in kept], moved
    text = "\n".join(part.text for part in kept if isinstance(part, TextBlock))
    return text, moved


def _tool_part(part: Any) -> dict[str, Any]:
    if isinstance(part, TextBlock):
        return {"type": "text", "text": part.text}
    return anthropic_part(part)


def content_part(block: TextBlock | ImageBlock | DocumentBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, DocumentBlock):
        return document_part(block)
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def document_part(block: DocumentBlock) -> dict[str, Any]:
    """A document as an OpenAI `file` part (base64 PDF) or a text part (a text document)."""
    source = block.source
    kind, data = source.get("type"), source.get("data")
    if kind == "base64" and isinstance(data, str):
        media = source.get("media_type") or "application/pdf"
        file = {
            "filename": block.title or "document.pdf",
            "file_data": f"data:{media};base64,{data}",
        }
        return {"type": "file", "file": file}
    if kind == "text" and isinstance(data, str):
        return {"type": "text", "text": f"{block.title}\n\n{data}" if block.title else data}
    raise bad_request(
        f"document blocks with a '{kind}' source can be sent to Anthropic backends only;"
        " send the document as base64 or text",
        param="messages",
    )


def parts_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone text part as a plain string (every OpenAI-compatible server takes that)."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def assistant_message(content: str | list[Any]) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    calls = [tool_call(block) for block in content if isinstance(block, ToolUseBlock)]
    message: dict[str, Any] = {"role": "assistant", "content": _assistant_content(content, calls)}
    thinking = [hub_thinking(block) for block in content if isinstance(block, ThinkingBlock)]
    if thinking:
        message[THINKING_BLOCKS] = thinking
        message[REASONING_CONTENT] = "".join(b.get("thinking", "") for b in thinking)
    if calls:
        message["tool_calls"] = calls
    return message


def _assistant_content(content: list[Any], calls: list[Any]) -> str | list[dict[str, Any]] | None:
    """The text, joined; with blocks the chat shape cannot say, those and the text blocks as
    sent (citations included), in order."""
    if any(isinstance(block, OtherBlock) for block in content):
        return [anthropic_part(b) for b in content if isinstance(b, OtherBlock | TextBlock)]
    text = "".join(block.text for block in content if isinstance(block, TextBlock))
    return text or (None if calls else "")


def hub_thinking(block: ThinkingBlock) -> dict[str, Any]:
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data or ""}
    return {
        "type": "thinking",
        "thinking": block.thinking or "",
        "signature": block.signature or "",
    }


def tool_call(block: ToolUseBlock) -> dict[str, Any]:
    arguments = dumps(block.input).decode()
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": arguments},
    }


def openai_tool(tool: ToolParam) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.input_schema
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def openai_tool_choice(choice: ToolChoice | None) -> dict[str, Any]:
    """`tool_choice` (and `parallel_tool_calls`) for a request that has tools."""
    if choice is None:
        return {}
    out: dict[str, Any] = {}
    if choice.type == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
    if choice.disable_parallel_tool_use and choice.type != "none":
        out["parallel_tool_calls"] = False
    return out
