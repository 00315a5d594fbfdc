"""Pure translation between the canonical form (OpenAI chat completions) and Anthropic's
Messages API: requests, answers, stream events and errors.

No I/O and no gateway state: functions take and return plain dicts, or raise `GatewayError`
(400) for input that Anthropic's format cannot express. The `anthropic` provider uses the
canonical -> Anthropic request direction and the Anthropic -> canonical answer, stream and
error direction; the mapping tables and block converters also have their inverses here
(`FINISH_TO_STOP`, `block_to_content_part`, `usage_to_anthropic`, `error_type_for_status`) so
an Anthropic-format ingress can translate the other way with the same rules.

Field names follow Anthropic's API reference (Messages, Streaming Messages, Errors) and the
official SDK types; OpenAI's follow the chat-completions reference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelway.errors import GatewayError, bad_request, upstream_error

Json = dict[str, Any]
System = str | list[Json]

DEFAULT_VERSION = "2023-06-01"
"""The `anthropic-version` header value of the Messages API."""

STOP_TO_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic `stop_reason` -> OpenAI `finish_reason`; anything else becomes `stop`."""

FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""OpenAI `finish_reason` -> Anthropic `stop_reason` (for an Anthropic-format ingress)."""

ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Anthropic error `type` -> HTTP status, from Anthropic's Errors reference. A status is kept
as the backend sent it (529 `overloaded_error` stays 529: it is >= 500, so the gateway
treats it as retriable and OpenAI SDKs raise `InternalServerError`)."""

_CHOICES = {"auto": "auto", "none": "none", "required": "any"}
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.DOTALL)


# --------------------------------------------------------------------------- small tables


def finish_reason(stop_reason: Any) -> str:
    """The OpenAI finish reason for an Anthropic stop reason."""
    return STOP_TO_FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason(finish: Any) -> str:
    """The Anthropic stop reason for an OpenAI finish reason."""
    return FINISH_TO_STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def error_status(error_type: Any, default: int = 502) -> int:
    """The HTTP status Anthropic uses for an error `type`."""
    return ERROR_TYPE_STATUS.get(error_type, default) if isinstance(error_type, str) else default


def error_type_for_status(status: int) -> str:
    """The Anthropic error `type` for an HTTP status (the inverse of `error_status`)."""
    for kind, code in ERROR_TYPE_STATUS.items():
        if code == status:
            return kind
    return "api_error" if status >= 500 else "invalid_request_error"


# --------------------------------------------------------------------------- requests


def request_to_anthropic(body: Json, *, default_max_tokens: int, sampling: bool = True) -> Json:
    """An OpenAI chat-completions request body as an Anthropic Messages request body.

    `default_max_tokens` applies when the client set neither `max_completion_tokens` nor
    `max_tokens`; `sampling=False` leaves out `temperature` and `top_p` (API version
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
    out.update(_sampling(body) if sampling else {})
    out.update(_options(body))
    out.update(_tooling(body))
    if body.get("stream") is True:
        out["stream"] = True
    return out


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
    if body.get("reasoning_effort") in _EFFORTS:
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
    blocks = content_to_blocks(message.get("content"), f"{where}.content")
    calls = message.get("tool_calls") or []
    return blocks + [tool_use_block(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)]


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
    """One OpenAI content part (text, refusal, image_url, file) as an Anthropic block."""
    kind = part.get("type") if isinstance(part, dict) else None
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
        media_type, data = parse_data_url(url, where)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
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
        media_type, data = parse_data_url(data, f"{where}.file_data")
    else:
        media_type = "application/pdf"
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def parse_data_url(url: str, where: str = "url") -> tuple[str, str]:
    """`data:<media type>;base64,<data>` as (media type, data)."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise bad_request("a data: URL must be of the form data:<type>;base64,<data>", param=where)
    return match.group(1), match.group(2)


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


# --------------------------------------------------------------------------- reverse blocks


def image_url_from_source(source: Json) -> str:
    """An Anthropic image `source` as an OpenAI image URL (a data URL for base64)."""
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    return str(source.get("url", ""))


def block_to_content_part(block: Json) -> Json:
    """An Anthropic text, image or base64 document block as an OpenAI content part."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    source = _obj(block.get("source"))
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": image_url_from_source(source)}}
    if kind == "document" and source.get("type") == "base64":
        return {"type": "file", "file": {"file_data": image_url_from_source(source)}}
    raise bad_request(f"content blocks of type '{kind}' have no OpenAI equivalent")


# --------------------------------------------------------------------------- answers


def message_to_completion(message: Json, *, created: int) -> Json:
    """An Anthropic Message as an OpenAI `chat.completion` (text joined, tool_use as calls)."""
    blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
    texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
    calls = [b for b in blocks if b.get("type") == "tool_use"]
    reply: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        reply["tool_calls"] = [tool_call_from_block(block) for block in calls]
    choice = {
        "index": 0,
        "message": reply,
        "finish_reason": finish_reason(message.get("stop_reason")),
        "logprobs": None,
    }
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model"),
        "choices": [choice],
        "usage": usage_from_anthropic(message.get("usage")),
    }


def tool_call_from_block(block: Json) -> Json:
    """An Anthropic `tool_use` block as an OpenAI tool call (input as a JSON string)."""
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": dump_arguments(block.get("input"))},
    }


def dump_arguments(value: Any) -> str:
    """Tool input as OpenAI's `arguments` string, spaced the way Anthropic streams it."""
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def usage_from_anthropic(usage: Any) -> Json:
    """Anthropic usage as OpenAI usage.

    `prompt_tokens` counts all input: `input_tokens` plus cache writes and cache reads;
    cache reads are also `prompt_tokens_details.cached_tokens`.
    """
    data = usage if isinstance(usage, dict) else {}
    cached = _int(data.get("cache_read_input_tokens"))
    prompt = _int(data.get("input_tokens")) + _int(data.get("cache_creation_input_tokens"))
    prompt += cached
    completion = _int(data.get("output_tokens"))
    out: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    details = data.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
        out["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    return out


def usage_to_anthropic(usage: Any) -> Json:
    """OpenAI usage as Anthropic usage (cached prompt tokens as cache reads)."""
    data = usage if isinstance(usage, dict) else {}
    details = data.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return {
        "input_tokens": max(_int(data.get("prompt_tokens")) - cached, 0),
        "output_tokens": _int(data.get("completion_tokens")),
        "cache_read_input_tokens": cached,
    }


def _obj(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --------------------------------------------------------------------------- errors


def error_from_body(status: int, body: Any) -> GatewayError:
    """An Anthropic error body (`{"type": "error", "error": {"type", "message"}}`) as a
    GatewayError with the status kept, Anthropic's error type as its type, and
    `error.details.error_code` (when present) as its code."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return upstream_error(status, f"the backend answered HTTP {status}")
    message = error.get("message")
    kind = error.get("type")
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return GatewayError(
        status,
        message if isinstance(message, str) and message else f"the backend answered HTTP {status}",
        kind if isinstance(kind, str) else _default_type(status),
        code if isinstance(code, str) else None,
    )


def _default_type(status: int) -> str:
    return "server_error" if status >= 500 else "invalid_request_error"


def error_from_event(data: Json) -> GatewayError:
    """A stream's `error` event as a GatewayError, with the status its type stands for."""
    error = data.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    return error_from_body(error_status(kind), data)


# --------------------------------------------------------------------------- streams


@dataclass(slots=True)
class _ToolBlock:
    index: int
    start_input: Any
    sent: bool = False


class StreamTranslator:
    """Anthropic stream events (parsed JSON objects) to canonical `chat.completion.chunk`s.

    Feed events in order with `event`; call `end` when the stream ends. The chunks are: the
    role, text deltas, tool-call deltas (id and name first, then `arguments` pieces), the
    finish reason, then a usage chunk `{"choices": [], "usage": ...}`. An `error` event
    raises GatewayError; a stream that ends before `message_delta` raises on `end`.
    """

    def __init__(self, *, created: int) -> None:
        self.created = created
        self.id = ""
        self.model = ""
        self.usage: Json = {}
        self.stop_reason: str | None = None
        self._tools: dict[Any, _ToolBlock] = {}
        self._text_seen = False
        self._delta_seen = False
        self._done = False

    def event(self, data: Json) -> list[Json]:
        handler = _HANDLERS.get(str(data.get("type")))
        return handler(self, data) if handler is not None and not self._done else []

    def end(self) -> list[Json]:
        if self._done:
            return []
        if not self._delta_seen:
            raise upstream_error(
                502,
                "the backend's stream ended before the answer was complete",
                "upstream_incomplete_stream",
            )
        return self._finish()

    def chunk(self, delta: Json, finish: str | None = None) -> Json:
        """A canonical chunk with one choice carrying `delta`."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**self._head(), "choices": [choice]}

    def _head(self) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _message_start(self, data: Json) -> list[Json]:
        message = _obj(data.get("message"))
        self.id = str(message.get("id") or "")
        self.model = str(message.get("model") or "")
        self._add_usage(message.get("usage"))
        return [self.chunk({"role": "assistant"})]

    def _block_start(self, data: Json) -> list[Json]:
        block = _obj(data.get("content_block"))
        kind = block.get("type")
        if kind == "text":
            return self._text(str(block.get("text") or ""), force=not self._text_seen)
        if kind == "tool_use":
            return self._tool_start(data.get("index"), block)
        return []

    def _text(self, text: str, force: bool = False) -> list[Json]:
        self._text_seen = True
        return [self.chunk({"content": text})] if text or force else []

    def _tool_start(self, index: Any, block: Json) -> list[Json]:
        tool = _ToolBlock(len(self._tools), block.get("input"))
        self._tools[index] = tool
        call = {
            "index": tool.index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self.chunk({"tool_calls": [call]})]

    def _block_delta(self, data: Json) -> list[Json]:
        delta = _obj(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(str(delta.get("text") or ""))
        tool = self._tools.get(data.get("index"))
        if kind == "input_json_delta" and tool is not None:
            return self._arguments(tool, str(delta.get("partial_json") or ""))
        return []

    def _arguments(self, tool: _ToolBlock, piece: str) -> list[Json]:
        if not piece:
            return []
        tool.sent = True
        call = {"index": tool.index, "function": {"arguments": piece}}
        return [self.chunk({"tool_calls": [call]})]

    def _block_stop(self, data: Json) -> list[Json]:
        tool = self._tools.get(data.get("index"))
        if tool is None or tool.sent:
            return []
        return self._arguments(tool, dump_arguments(tool.start_input))

    def _message_delta(self, data: Json) -> list[Json]:
        self._delta_seen = True
        delta = _obj(data.get("delta"))
        if delta.get("stop_reason") is not None:
            self.stop_reason = delta["stop_reason"]
        self._add_usage(data.get("usage"))
        return []

    def _message_stop(self, data: Json) -> list[Json]:
        return self._finish()

    def _finish(self) -> list[Json]:
        self._done = True
        usage = {**self._head(), "choices": [], "usage": usage_from_anthropic(self.usage)}
        return [self.chunk({}, finish_reason(self.stop_reason)), usage]

    def _add_usage(self, usage: Any) -> None:
        """Usage counts are cumulative: later values replace earlier ones."""
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _error(self, data: Json) -> list[Json]:
        raise error_from_event(data)


_HANDLERS: dict[str, Callable[[StreamTranslator, Json], list[Json]]] = {
    "message_start": StreamTranslator._message_start,
    "content_block_start": StreamTranslator._block_start,
    "content_block_delta": StreamTranslator._block_delta,
    "content_block_stop": StreamTranslator._block_stop,
    "message_delta": StreamTranslator._message_delta,
    "message_stop": StreamTranslator._message_stop,
    "error": StreamTranslator._error,
}
"""Event types the translator acts on; `ping` and unknown types are skipped."""
