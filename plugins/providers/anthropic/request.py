"""Canonical (OpenAI chat-completions) requests as Anthropic Messages requests.

Pure: plain dicts in and out, or a `GatewayError` 400 for input that Anthropic's format
cannot express. Field names follow Anthropic's Messages reference and the official SDK types.
"""

from __future__ import annotations

import json
from typing import Any

from modelway.errors import bad_request
from modelway.hubext import ANTHROPIC_BLOCK, MIN_BUDGET, THINKING_BLOCKS, thinking_from_effort
from modelway.plugins.providers.anthropic.features import (
    anthropic_features,
    with_own_tools,
    with_unknown,
)
from modelway.providerkit import DataURL, parse_data_url

Json = dict[str, Any]
System = str | list[Json]

DEFAULT_VERSION = "2023-06-01"
"""The `anthropic-version` header value of the Messages API."""

_CHOICES = {"auto": "auto", "none": "none", "required": "any"}
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})


# --------------------------------------------------------------------------- requests


def request_to_anthropic(body: Json, *, default_max_tokens: int, sampling: bool = True) -> Json:
    """An OpenAI chat-completions request body as an Anthropic Messages request body.

    `default_max_tokens` applies when the client set neither `max_completion_tokens` nor
    `max_tokens`; `sampling=False` leaves out `temperature`, `top_p` and `top_k` (API version
    2026-10-21 removed them).
    """
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise bad_request("Anthropic models return one choice: 'n' must be 1", param="n")
    system, messages = messages_to_anthropic(body.get("messages") or [])
    out: Json = {"model": body.get("model"), "messages": messages}
    if system is not None:
        out["system"] = system
    out["max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = out["max_tokens"] or default_max_tokens
    thinking = _thinking(body, out["max_tokens"], default_max_tokens)
    if thinking is not None:
        out["thinking"] = thinking
        if thinking.get("type") == "enabled" and thinking["budget_tokens"] >= out["max_tokens"]:
            out["max_tokens"] = thinking["budget_tokens"] + default_max_tokens
    out.update(_sampling(body) if sampling else {})
    out.update(_options(body))
    out.update(_tooling(body))
    out.update(anthropic_features(body, sampling=sampling))
    with_own_tools(out, body)
    if body.get("stream") is True:
        out["stream"] = True
    with_unknown(out, body)
    return out


def _thinking(body: Json, max_tokens: Any, default_max_tokens: int) -> Json | None:
    """Anthropic `thinking` from the hub's (or from `reasoning_effort`). A budget the client
    capped with its own max tokens is cut to fit; one that cannot fit is a 400."""
    thinking = body.get("thinking")
    explicit = body.get("max_completion_tokens") or body.get("max_tokens")
    if thinking is None:
        thinking = thinking_from_effort(body.get("reasoning_effort"), explicit or None)
        return thinking if thinking is None or thinking["type"] != "disabled" else None
    if not isinstance(thinking, dict) or thinking.get("type") not in _THINKING_TYPES:
        raise bad_request(
            "thinking must be enabled (with budget_tokens), adaptive or disabled",
            param="thinking",
        )
    budget = thinking.get("budget_tokens")
    if thinking["type"] == "enabled":
        if not isinstance(budget, int) or budget < MIN_BUDGET:
            raise bad_request(
                f"thinking.budget_tokens must be at least {MIN_BUDGET}", param="thinking"
            )
        if explicit and budget >= max_tokens:
            raise bad_request(
                "thinking.budget_tokens must be less than max_tokens", param="thinking"
            )
    return dict(thinking)


_THINKING_TYPES = frozenset({"enabled", "adaptive", "disabled"})


def _sampling(body: Json) -> Json:
    out: Json = {}
    temperature = body.get("temperature")
    if isinstance(temperature, int | float):
        out["temperature"] = min(temperature, 1)  # OpenAI allows 0..2, Anthropic 0..1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    return out


def _options(body: Json) -> Json:
    out: Json = {}
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    config = _output_config(body)
    if config:
        out["output_config"] = config
    return out


def _output_config(body: Json) -> Json:
    config: Json = {}
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise bad_request("json_schema needs a 'schema' object", param="response_format")
        config["format"] = {"type": "json_schema", "schema": schema}
    if isinstance(body.get("reasoning_effort"), str) and body["reasoning_effort"] in _EFFORTS:
        config["effort"] = body["reasoning_effort"]
    return config


def _tooling(body: Json) -> Json:
    tools = body.get("tools")
    if not tools:
        return {}
    out: Json = {"tools": [tool_to_anthropic(tool, i) for i, tool in enumerate(tools)]}
    choice = tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None:
        out["tool_choice"] = choice
    return out


def tool_to_anthropic(tool: Any, index: int = 0) -> Json:
    """An OpenAI function tool as an Anthropic custom tool (name, description, input_schema)."""
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise bad_request(
            "only 'function' tools can be sent to an Anthropic backend", param=f"tools[{index}]"
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("a function tool needs a name", param=f"tools[{index}].function.name")
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    out: Json = {"name": name}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = schema
    return out


def tool_choice_to_anthropic(choice: Any, parallel_tool_calls: Any = None) -> Json | None:
    """OpenAI `tool_choice` (+ `parallel_tool_calls`) as Anthropic's, or None to leave it out."""
    out = _tool_choice(choice)
    if parallel_tool_calls is False:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def _tool_choice(choice: Any) -> Json | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICES:
        return {"type": _CHOICES[choice]}
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(name, str):
        return {"type": "tool", "name": name}
    raise bad_request(
        "tool_choice must be 'auto', 'none', 'required' or a function", param="tool_choice"
    )


# --------------------------------------------------------------------------- messages


def messages_to_anthropic(messages: list[Any]) -> tuple[System | None, list[Json]]:
    """OpenAI messages as Anthropic's top-level `system` and alternating `messages`.

    System and developer messages (wherever they are) become `system`; tool messages become
    `tool_result` blocks in a user turn; consecutive turns of one role are merged.
    """
    system: list[str] = []
    turns: list[tuple[str, list[Json]]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request("a message must be an object", param=where)
        if message.get("role") in ("system", "developer"):
            system.append(_plain_text(message.get("content"), f"{where}.content"))
        else:
            turns.append(_turn(message, where))
    return _system(system), merge_turns(turns)


def _system(texts: list[str]) -> System | None:
    texts = [text for text in texts if text]
    if not texts:
        return None
    if len(texts) == 1:
        return texts[0]
    return [{"type": "text", "text": text} for text in texts]


def _plain_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    blocks = content_to_blocks(content, where)
    if any(block["type"] != "text" for block in blocks):
        raise bad_request("system messages can hold text only", param=where)
    return "\n".join(block["text"] for block in blocks)


def _turn(message: Json, where: str) -> tuple[str, list[Json]]:
    role = message.get("role")
    if role == "user":
        return "user", content_to_blocks(message.get("content"), f"{where}.content")
    if role == "assistant":
        return "assistant", _assistant_blocks(message, where)
    if role == "tool":
        return "user", [tool_result_block(message, where)]
    raise bad_request(f"role '{role}' cannot be sent to an Anthropic backend", param=where)


def _assistant_blocks(message: Json, where: str) -> list[Json]:
    blocks = thinking_blocks(message.get(THINKING_BLOCKS))
    blocks += content_to_blocks(message.get("content"), f"{where}.content")
    calls = message.get("tool_calls") or []
    return blocks + [tool_use_block(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)]


def thinking_blocks(blocks: Any) -> list[Json]:
    """The hub's signed thinking blocks as Anthropic's; text without an Anthropic signature
    (another backend's reasoning, a Gemini signature) cannot be verified and stays out."""
    out: list[Json] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        signature = block.get("signature")
        if block.get("type") == "thinking" and isinstance(signature, str) and signature:
            if not signature.startswith("gemini:"):
                out.append(
                    {
                        "type": "thinking",
                        "thinking": str(block.get("thinking") or ""),
                        "signature": signature,
                    }
                )
        elif block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
            out.append({"type": "redacted_thinking", "data": block["data"]})
    return out


def merge_turns(turns: list[tuple[str, list[Json]]]) -> list[Json]:
    """Turns as Anthropic messages: empty ones dropped, consecutive same-role ones merged.

    In a user message the `tool_result` blocks come first, as the API requires; a message
    that is one text block is sent as a plain string.
    """
    merged: list[tuple[str, list[Json]]] = []
    for role, blocks in turns:
        if not blocks:
            continue
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(blocks)
        else:
            merged.append((role, list(blocks)))
    return [{"role": role, "content": _final_content(role, blocks)} for role, blocks in merged]


def _final_content(role: str, blocks: list[Json]) -> str | list[Json]:
    if role == "user":
        blocks.sort(key=lambda block: block["type"] != "tool_result")
    if len(blocks) == 1 and set(blocks[0]) == {"type", "text"} and blocks[0]["type"] == "text":
        return str(blocks[0]["text"])
    return blocks


def content_to_blocks(content: Any, where: str = "content") -> list[Json]:
    """OpenAI message content (a string or a list of parts) as Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("content must be a string or a list of parts", param=where)
    blocks = [content_part_to_block(part, f"{where}[{i}]") for i, part in enumerate(content)]
    return [block for block in blocks if block.get("type") != "text" or block["text"]]


def content_part_to_block(part: Any, where: str = "content") -> Json:
    """One OpenAI content part (text, refusal, image_url, file) as an Anthropic block; an
    Anthropic block the hub carries (`anthropic_block`) as it was sent."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == ANTHROPIC_BLOCK and isinstance(part.get(kind), dict):
        return dict(part[kind])
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise bad_request(f"a {kind} part needs a '{kind}' string", param=where)
        return {"type": "text", "text": text}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return image_block(url, f"{where}.image_url.url")
    if kind == "file":
        return document_block(part.get("file"), f"{where}.file")
    raise bad_request(
        f"content parts of type '{kind}' cannot be sent to an Anthropic backend", param=where
    )


def image_block(url: Any, where: str = "url") -> Json:
    """An image URL (a base64 data URL or an http(s) URL) as an Anthropic image block."""
    if isinstance(url, str) and url.startswith("data:"):
        return {"type": "image", "source": _base64_source(parse_data_url(url, where))}
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request("an image URL must be a base64 data: URL or an http(s) URL", param=where)


def document_block(file: Any, where: str = "file") -> Json:
    """An OpenAI `file` part with inline `file_data` as an Anthropic base64 document block."""
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data:
        raise bad_request(
            "an Anthropic backend takes files as inline 'file_data' only", param=where
        )
    if data.startswith("data:"):
        source = _base64_source(parse_data_url(data, f"{where}.file_data"))
    else:
        source = {"type": "base64", "media_type": "application/pdf", "data": data}
    return {"type": "document", "source": source}


def _base64_source(url: DataURL) -> Json:
    return {"type": "base64", "media_type": url.media_type, "data": url.data}


def tool_use_block(call: Any, where: str = "tool_call") -> Json:
    """An OpenAI assistant tool call as an Anthropic `tool_use` block (arguments parsed)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise bad_request("a tool call must be a function call", param=where)
    if not isinstance(call.get("id"), str) or not isinstance(function.get("name"), str):
        raise bad_request("a tool call needs an id and a function name", param=where)
    arguments = parse_arguments(function.get("arguments"), f"{where}.function.arguments")
    return {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}


def parse_arguments(arguments: Any, where: str = "arguments") -> Json:
    """A tool call's JSON arguments string as the object Anthropic's `input` needs."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        raise bad_request("tool call arguments must be a JSON object", param=where) from None
    if not isinstance(value, dict):
        raise bad_request("tool call arguments must be a JSON object", param=where)
    return value


def tool_result_block(message: Json, where: str = "message") -> Json:
    """An OpenAI `tool` message as an Anthropic `tool_result` block."""
    tool_use_id = message.get("tool_call_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise bad_request("a tool message needs a tool_call_id", param=f"{where}.tool_call_id")
    block: Json = {"type": "tool_result", "tool_use_id": tool_use_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content is not None:
        block["content"] = content_to_blocks(content, f"{where}.content")
    return block
