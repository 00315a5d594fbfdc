"""Canonical (OpenAI chat-completions) requests as Bedrock Converse / ConverseStream bodies.

The model id goes in the URL path, not the body. Field names follow the Bedrock Runtime API
reference (botocore's `bedrock-runtime` service model, API version 2023-09-30). Pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from modelway.errors import bad_request
from modelway.hubext import ANTHROPIC_UNKNOWN, TOP_K
from modelway.providerkit import as_dict, dumps, parse_data_url

JSON = dict[str, Any]

_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_BEDROCK_ROLE = {"user": "user", "tool": "user", "function": "user", "assistant": "assistant"}


def converse_request(body: Mapping[str, Any]) -> JSON:
    """The Converse request body for an OpenAI chat-completions request body."""
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise bad_request("Bedrock returns one choice per request; n must be 1", param="n")
    system, messages = _conversation(body.get("messages") or [])
    out: JSON = {"messages": messages}
    if system:
        out["system"] = system
    inference = _inference_config(body)
    if inference:
        out["inferenceConfig"] = inference
    tool_config = _tool_config(body, messages)
    if tool_config:
        out["toolConfig"] = tool_config
    output_config = _output_config(body.get("response_format"))
    if output_config:
        out["outputConfig"] = output_config
    return out


def features_for(model: str) -> frozenset[str]:
    """The hub's optional features (`modelway.hubfit`) a Bedrock model takes, in
    `additionalModelRequestFields`: `top_k` for Claude and Nova models; for Claude (whose
    own request fields those are) also an Anthropic client's fields the gateway does not know."""
    if _claude(model):
        return frozenset({TOP_K, ANTHROPIC_UNKNOWN})
    return frozenset({TOP_K}) if _nova(model) else frozenset()


def model_fields(body: Mapping[str, Any], model: str) -> JSON:
    """The model-specific `additionalModelRequestFields` of a request: `top_k` (Claude's
    field; Nova's `inferenceConfig.topK`) and, for Claude, the Anthropic fields the gateway
    does not know, as sent."""
    top_k = body.get(TOP_K)
    if _nova(model):
        return {"inferenceConfig": {"topK": top_k}} if top_k is not None else {}
    if not _claude(model):
        return {}
    unknown = body.get(ANTHROPIC_UNKNOWN)
    out: JSON = dict(unknown) if isinstance(unknown, dict) else {}
    if top_k is not None:
        out[TOP_K] = top_k
    return out


def _claude(model: str) -> bool:
    return "anthropic.claude" in model


def _nova(model: str) -> bool:
    return "amazon.nova" in model


def _conversation(messages: Iterable[Mapping[str, Any]]) -> tuple[list[JSON], list[JSON]]:
    """System blocks, and the other messages with consecutive same-role turns merged."""
    system: list[JSON] = []
    turns: list[JSON] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _texts(message.get("content"), index))
            continue
        bedrock_role = _BEDROCK_ROLE.get(str(role))
        if bedrock_role is None:
            raise bad_request(f"messages[{index}]: unknown role {role!r}")
        _append_turn(turns, bedrock_role, _blocks(message, index))
    return system, turns


def _append_turn(turns: list[JSON], role: str, blocks: list[JSON]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _blocks(message: Mapping[str, Any], index: int) -> list[JSON]:
    role = message.get("role")
    if role == "assistant":
        return _assistant_blocks(message, index)
    if role in ("tool", "function"):
        return [_tool_result(message, index)]
    return _user_blocks(message.get("content"), index)


def _texts(content: Any, index: int) -> list[str]:
    """The text of a system or tool message: a string, or a list of text parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    texts = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise bad_request(f"messages[{index}]: only text parts are allowed in this message")
        texts.append(part["text"])
    return texts


def _user_blocks(content: Any, index: int) -> list[JSON]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    return [_user_part(part, f"messages[{index}].content[{n}]") for n, part in enumerate(content)]


def _user_part(part: Mapping[str, Any], where: str) -> JSON:
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return {"text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str):
            return {"image": _image(url, f"{where}.image_url.url")}
    raise bad_request(f"{where}: content part of type {kind!r} is not supported by Bedrock")


def _image(url: str, where: str) -> JSON:
    """An image block from a data URL or an s3:// URL (Bedrock does not fetch http URLs)."""
    if url.startswith("s3://"):
        return {
            "format": _image_format(url.rsplit(".", 1)[-1], where),
            "source": {"s3Location": {"uri": url}},
        }
    if not url.startswith("data:"):
        raise bad_request(
            f"{where}: Bedrock accepts images as data: URLs or s3:// URLs, not {url[:8]}…",
            param=where,
        )
    data_url = parse_data_url(url, where)
    kind, _, subtype = data_url.media_type.partition("/")
    if kind != "image":
        raise bad_request(f"{where}: an image data URL must hold image data", param=where)
    return {"format": _image_format(subtype, where), "source": {"bytes": data_url.data}}


def _image_format(name: str, where: str) -> str:
    image_format = _IMAGE_FORMATS.get(name.lower())
    if image_format is None:
        raise bad_request(
            f"{where}: image format {name!r} is not supported by Bedrock", param=where
        )
    return image_format


def _assistant_blocks(message: Mapping[str, Any], index: int) -> list[JSON]:
    blocks: list[JSON] = [{"text": t} for t in _texts(message.get("content"), index) if t]
    for call in message.get("tool_calls") or []:
        function = as_dict(call.get("function"))
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": call.get("id"),
                    "name": function.get("name"),
                    "input": _arguments(function.get("arguments"), index),
                }
            }
        )
    return blocks


def _arguments(arguments: Any, index: int) -> Any:
    if not arguments:
        return {}
    try:
        return json.loads(arguments)
    except (TypeError, ValueError):
        raise bad_request(
            f"messages[{index}]: tool call arguments must be a JSON string for Bedrock"
        ) from None


def _tool_result(message: Mapping[str, Any], index: int) -> JSON:
    call_id = message.get("tool_call_id") or message.get("name")
    content = [{"text": text} for text in _texts(message.get("content"), index)]
    return {"toolResult": {"toolUseId": call_id, "content": content}}


def _inference_config(body: Mapping[str, Any]) -> JSON:
    config: JSON = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def _tool_config(body: Mapping[str, Any], messages: list[JSON]) -> JSON | None:
    """`toolConfig`. Bedrock has no `none` choice: the tools are left out instead, unless the
    conversation already holds tool blocks (Bedrock then requires the tool definitions)."""
    tools = [_tool_spec(tool) for tool in body.get("tools") or []]
    choice = body.get("tool_choice")
    if not tools or (choice == "none" and not _has_tool_blocks(messages)):
        return None
    config: JSON = {"tools": tools}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, Mapping):
        name = as_dict(choice.get("function")).get("name")
        if not isinstance(name, str):
            raise bad_request("tool_choice: a function name is required", param="tool_choice")
        config["toolChoice"] = {"tool": {"name": name}}
    return config


def _tool_spec(tool: Mapping[str, Any]) -> JSON:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, Mapping):
        raise bad_request("tools: only function tools are supported by Bedrock", param="tools")
    spec: JSON = {"name": function.get("name")}
    if function.get("description"):
        spec["description"] = function["description"]
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    spec["inputSchema"] = {"json": schema}
    return {"toolSpec": spec}


def _has_tool_blocks(messages: list[JSON]) -> bool:
    return any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])


def _output_config(response_format: Any) -> JSON | None:
    """`response_format: json_schema` as Converse's structured output (`outputConfig`)."""
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None
    given = as_dict(response_format.get("json_schema"))
    schema: JSON = {"schema": dumps(given.get("schema") or {}).decode()}
    for key in ("name", "description"):
        if isinstance(given.get(key), str):
            schema[key] = given[key]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
