"""AWS Bedrock's Converse wire format: pure translation to and from the canonical (OpenAI) form.

- `converse_request`: an OpenAI chat-completions body as a Converse / ConverseStream body
  (the model id goes in the URL path, not the body).
- `chat_completion`: a Converse answer as an OpenAI `chat.completion`.
- `ConverseStreamTranslator`: ConverseStream events as OpenAI `chat.completion.chunk`s.
- `EventStreamDecoder`: the `application/vnd.amazon.eventstream` binary framing, decoded
  incrementally from any split of the byte stream.
- `error_from_response`, `stream_exception`: Bedrock errors as `GatewayError`s.

Field names follow the Bedrock Runtime API reference (botocore's `bedrock-runtime` service
model, API version 2023-09-30). No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelway.errors import GatewayError, bad_request, upstream_error

JSON = dict[str, Any]

# --------------------------------------------------------------------------- request

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
    return [_user_part(part, index) for part in content]


def _user_part(part: Mapping[str, Any], index: int) -> JSON:
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return {"text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str):
            return {"image": _image(url, index)}
    raise bad_request(
        f"messages[{index}]: content part of type {kind!r} is not supported by Bedrock"
    )


def _image(url: str, index: int) -> JSON:
    """An image block from a data URL or an s3:// URL (Bedrock does not fetch http URLs)."""
    if url.startswith("s3://"):
        return {
            "format": _image_format(url.rsplit(".", 1)[-1], index),
            "source": {"s3Location": {"uri": url}},
        }
    if not url.startswith("data:"):
        raise bad_request(
            f"messages[{index}]: Bedrock accepts images as data: URLs or s3:// URLs, not {url[:8]}…"
        )
    header, _, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if encoding != "base64" or not mime.startswith("image/"):
        raise bad_request(f"messages[{index}]: an image data URL must be base64 image data")
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        raise bad_request(f"messages[{index}]: the image data is not valid base64") from None
    return {"format": _image_format(mime[6:], index), "source": {"bytes": data}}


def _image_format(name: str, index: int) -> str:
    image_format = _IMAGE_FORMATS.get(name.lower())
    if image_format is None:
        raise bad_request(f"messages[{index}]: image format {name!r} is not supported by Bedrock")
    return image_format


def _assistant_blocks(message: Mapping[str, Any], index: int) -> list[JSON]:
    blocks: list[JSON] = [{"text": t} for t in _texts(message.get("content"), index) if t]
    for call in message.get("tool_calls") or []:
        function = _mapping(call.get("function"))
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
        name = _mapping(choice.get("function")).get("name")
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
    given = _mapping(response_format.get("json_schema"))
    schema: JSON = {"schema": json.dumps(given.get("schema") or {}, separators=(",", ":"))}
    for key in ("name", "description"):
        if isinstance(given.get(key), str):
            schema[key] = given[key]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}


# --------------------------------------------------------------------------- response

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's finish reason for a Converse `stopReason` (unknown ones end as `stop`)."""
    return _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def openai_usage(usage: Any) -> JSON | None:
    """Converse `usage` as OpenAI usage. Bedrock's `inputTokens` leaves out cached input, which
    OpenAI's `prompt_tokens` counts (with the cache reads in `cached_tokens`)."""
    if not isinstance(usage, Mapping):
        return None
    cached = _count(usage.get("cacheReadInputTokens"))
    prompt = _count(usage.get("inputTokens")) + cached + _count(usage.get("cacheWriteInputTokens"))
    completion = _count(usage.get("outputTokens"))
    out: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if "cacheReadInputTokens" in usage:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def chat_completion(data: Any, *, response_id: str, model: str, created: int) -> JSON:
    """A Converse answer as an OpenAI `chat.completion`; GatewayError 502 if it is garbled."""
    choice = {
        "index": 0,
        "message": _assistant_message(_output_message(data)),
        "finish_reason": finish_reason(data.get("stopReason")),
        "logprobs": None,
    }
    out: JSON = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    usage = openai_usage(data.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def _assistant_message(message: Mapping[str, Any]) -> JSON:
    """Text blocks joined as `content`, toolUse blocks as `tool_calls`; others are dropped."""
    blocks = [b for b in message["content"] if isinstance(b, Mapping)]
    texts = [b["text"] for b in blocks if isinstance(b.get("text"), str)]
    calls = [_tool_call(b["toolUse"]) for b in blocks if isinstance(b.get("toolUse"), Mapping)]
    answer: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        answer["tool_calls"] = calls
    return answer


def _output_message(data: Any) -> Mapping[str, Any]:
    output = data.get("output") if isinstance(data, Mapping) else None
    message = output.get("message") if isinstance(output, Mapping) else None
    if not isinstance(message, Mapping) or not isinstance(message.get("content"), list):
        raise upstream_error(
            502, "the backend's answer has no output message", "upstream_invalid_response"
        )
    return message


def _tool_call(tool_use: Mapping[str, Any]) -> JSON:
    arguments = json.dumps(tool_use.get("input", {}), separators=(",", ":"), ensure_ascii=False)
    return {
        "id": tool_use.get("toolUseId"),
        "type": "function",
        "function": {"name": tool_use.get("name"), "arguments": arguments},
    }


# --------------------------------------------------------------------------- stream events


class ConverseStreamTranslator:
    """ConverseStream events (by `:event-type`) as OpenAI chunks, one event at a time.

    Order out: a role chunk, text and tool-call deltas (id and name first, then argument
    fragments), the finish chunk (`messageStop`), then a usage chunk (`metadata`).
    """

    def __init__(self, response_id: str, model: str, created: int) -> None:
        self._base = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._role_sent = False
        self._tool_index: dict[int, int] = {}
        self._handlers: dict[str, Callable[[Mapping[str, Any]], list[JSON]]] = {
            "messageStart": self._message_start,
            "contentBlockStart": self._block_start,
            "contentBlockDelta": self._block_delta,
            "messageStop": self._message_stop,
            "metadata": self._metadata,
        }

    def event(self, event_type: str, payload: Mapping[str, Any]) -> list[JSON]:
        """The chunks one event becomes (none for `contentBlockStop` and unknown events)."""
        handler = self._handlers.get(event_type)
        return handler(payload) if handler else []

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**self._base, "choices": [choice]}

    def _with_role(self, chunks: list[JSON]) -> list[JSON]:
        if self._role_sent:
            return chunks
        self._role_sent = True
        return [self._chunk({"role": "assistant", "content": ""}), *chunks]

    def _message_start(self, payload: Mapping[str, Any]) -> list[JSON]:
        return self._with_role([])

    def _block_start(self, payload: Mapping[str, Any]) -> list[JSON]:
        tool_use = _mapping(payload.get("start")).get("toolUse")
        if not isinstance(tool_use, Mapping):
            return []
        index = self._tool_index.setdefault(
            _count(payload.get("contentBlockIndex")), len(self._tool_index)
        )
        call = {
            "index": index,
            "id": tool_use.get("toolUseId"),
            "type": "function",
            "function": {"name": tool_use.get("name"), "arguments": ""},
        }
        return self._with_role([self._chunk({"tool_calls": [call]})])

    def _block_delta(self, payload: Mapping[str, Any]) -> list[JSON]:
        delta = _mapping(payload.get("delta"))
        if isinstance(delta.get("text"), str):
            return self._with_role([self._chunk({"content": delta["text"]})])
        tool_use = delta.get("toolUse")
        if not isinstance(tool_use, Mapping) or not isinstance(tool_use.get("input"), str):
            return []  # reasoning, citations and other deltas have no OpenAI equivalent
        index = self._tool_index.get(_count(payload.get("contentBlockIndex")), 0)
        call = {"index": index, "function": {"arguments": tool_use["input"]}}
        return self._with_role([self._chunk({"tool_calls": [call]})])

    def _message_stop(self, payload: Mapping[str, Any]) -> list[JSON]:
        return self._with_role([self._chunk({}, finish_reason(payload.get("stopReason")))])

    def _metadata(self, payload: Mapping[str, Any]) -> list[JSON]:
        usage = openai_usage(payload.get("usage"))
        return [] if usage is None else [{**self._base, "choices": [], "usage": usage}]


# --------------------------------------------------------------------------- eventstream

_PRELUDE = 12  # total length u32, headers length u32, prelude CRC32
_TRAILER = 4  # message CRC32
MAX_MESSAGE_BYTES = 24 * 1024 * 1024

HeaderValue = bool | int | bytes | str


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One decoded eventstream message: its headers (`:event-type`, ...) and payload bytes."""

    headers: dict[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


def _invalid(message: str) -> GatewayError:
    return upstream_error(
        502, f"the backend's event stream is broken: {message}", "upstream_invalid_stream"
    )


class EventStreamDecoder:
    """Incremental `application/vnd.amazon.eventstream` decoder: feed bytes as they arrive,
    get back the messages they complete. Both CRCs are checked; a broken frame raises
    GatewayError 502, after the messages before it have been returned."""

    __slots__ = ("_buffer", "_error")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._error: GatewayError | None = None

    def feed(self, data: bytes) -> list[EventMessage]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[EventMessage] = []
        try:
            self._take(messages)
        except GatewayError as error:
            if not messages:
                raise
            self._error, self._buffer = error, bytearray()
        return messages

    def close(self) -> None:
        """End of stream: raise if a message was cut off (or a broken frame is pending)."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            raise _invalid(f"it ends inside a message ({len(self._buffer)} bytes left over)")

    def _take(self, messages: list[EventMessage]) -> None:
        start = 0
        try:
            while len(self._buffer) - start >= _PRELUDE:
                total = self._frame_length(start)
                if len(self._buffer) - start < total:
                    break
                messages.append(_message(bytes(self._buffer[start : start + total])))
                start += total
        finally:
            del self._buffer[:start]

    def _frame_length(self, start: int) -> int:
        total, headers_length, crc = struct.unpack_from(">III", self._buffer, start)
        if zlib.crc32(self._buffer[start : start + 8]) != crc:
            raise _invalid("prelude checksum mismatch")
        if total < _PRELUDE + _TRAILER + headers_length or total > MAX_MESSAGE_BYTES:
            raise _invalid(f"impossible message length {total}")
        return int(total)


def _message(frame: bytes) -> EventMessage:
    (expected,) = struct.unpack_from(">I", frame, len(frame) - _TRAILER)
    if zlib.crc32(frame[:-_TRAILER]) != expected:
        raise _invalid("message checksum mismatch")
    (headers_length,) = struct.unpack_from(">I", frame, 4)
    headers_end = _PRELUDE + headers_length
    headers = _headers(frame[_PRELUDE:headers_end])
    return EventMessage(headers, frame[headers_end:-_TRAILER])


_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}  # byte, short, int, long, timestamp


def _headers(raw: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    offset = 0
    try:
        while offset < len(raw):
            name_length = raw[offset]
            name = raw[offset + 1 : offset + 1 + name_length].decode()
            value, offset = _header_value(raw, offset + 1 + name_length)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, ValueError):
        raise _invalid("malformed message headers") from None
    return headers


def _header_value(raw: bytes, offset: int) -> tuple[HeaderValue, int]:
    kind = raw[offset]
    offset += 1
    if kind in (0, 1):  # boolean true / false, no value bytes
        return kind == 0, offset
    if kind in _FIXED:
        fmt = _FIXED[kind]
        return struct.unpack_from(fmt, raw, offset)[0], offset + struct.calcsize(fmt)
    if kind == 9:  # uuid
        return _exact(raw, offset, 16), offset + 16
    if kind in (6, 7):  # byte array / string: u16 length, then the bytes
        (length,) = struct.unpack_from(">H", raw, offset)
        value = _exact(raw, offset + 2, length)
        return (value.decode() if kind == 7 else value), offset + 2 + length
    raise ValueError(f"unknown header type {kind}")


def _exact(raw: bytes, offset: int, length: int) -> bytes:
    value = raw[offset : offset + length]
    if len(value) != length:
        raise ValueError("header value cut off")
    return value


# --------------------------------------------------------------------------- errors

# HTTP statuses of the exceptions a ConverseStream can carry (from the service model).
_STREAM_STATUS = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}


def error_type(headers: Mapping[str, str], data: Any) -> str | None:
    """The AWS error type: `x-amzn-errortype` (before any ':'), else the body's `__type`."""
    raw = headers.get("x-amzn-errortype")
    if not raw and isinstance(data, Mapping):
        raw = data.get("__type") or data.get("code")
    if not isinstance(raw, str) or not raw:
        return None
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
    """A Bedrock error answer (`{"message": ...}`) as a GatewayError with the status kept."""
    data = _json_or_none(body)
    kind = error_type(headers, data)
    message = _message_of(data) or f"the backend answered HTTP {status}"
    if kind:
        message = f"{kind}: {message}"
    return upstream_error(status, message, kind or "upstream_error")


def stream_exception(message: EventMessage) -> GatewayError:
    """An `exception` or `error` message inside a ConverseStream as a GatewayError."""
    kind = message.header(":exception-type") or message.header(":error-code") or "error"
    text = _message_of(_json_or_none(message.payload)) or message.header(":error-message")
    status = _STREAM_STATUS.get(kind, 502)
    return upstream_error(status, f"{kind}: {text or 'the backend reported an error'}", kind)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _message_of(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    message = data.get("message") or data.get("Message")
    return message if isinstance(message, str) and message else None
