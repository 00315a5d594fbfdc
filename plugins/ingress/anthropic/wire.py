"""Pure translation between the Anthropic Messages API (as clients speak it) and the canonical form.

Requests: an Anthropic `POST /v1/messages` body is validated (unknown fields are accepted
and not forwarded) and turned into an OpenAI chat-completions body. Answers: a canonical
`chat.completion` becomes an Anthropic `message`; canonical `chat.completion.chunk`s become
Anthropic stream events (`message_start`, `content_block_*`, `message_delta`, `message_stop`),
chunk for chunk; a `GatewayError` becomes Anthropic's error shape. No I/O here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from modelway.errors import GatewayError, bad_request
from modelway.sse import encode_event

Open = ConfigDict(extra="allow")
Number = StrictInt | StrictFloat

# ------------------------------------------------------------------------ request models


class TextBlock(BaseModel):
    model_config = Open
    type: Literal["text"]
    text: StrictStr


class Base64Source(BaseModel):
    model_config = Open
    type: Literal["base64"]
    media_type: StrictStr
    data: StrictStr


class URLSource(BaseModel):
    model_config = Open
    type: Literal["url"]
    url: StrictStr


class ImageBlock(BaseModel):
    model_config = Open
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ToolUseBlock(BaseModel):
    model_config = Open
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any]


ToolResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(BaseModel):
    model_config = Open
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[ToolResultPart] | None = None
    is_error: StrictBool | None = None


class ThinkingBlock(BaseModel):
    """Extended-thinking blocks a client sends back; they have no OpenAI equivalent."""

    model_config = Open
    type: Literal["thinking", "redacted_thinking"]


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(BaseModel):
    model_config = Open
    role: Literal["user", "assistant"]
    content: StrictStr | list[ContentBlock]

    @model_validator(mode="after")
    def _blocks_fit_the_role(self) -> MessageParam:
        allowed = _ROLE_BLOCKS[self.role]
        for block in self.content if isinstance(self.content, list) else ():
            if not isinstance(block, allowed):
                raise ValueError(f"{block.type} blocks are not allowed in {self.role} messages")
        return self


_ROLE_BLOCKS: dict[str, tuple[type[BaseModel], ...]] = {
    "user": (TextBlock, ImageBlock, ToolResultBlock),
    "assistant": (TextBlock, ToolUseBlock, ThinkingBlock),
}


class ToolParam(BaseModel):
    model_config = Open
    type: Literal["custom"] | None = None
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    input_schema: dict[str, Any]


class ToolChoice(BaseModel):
    model_config = Open
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool | None = None


class Metadata(BaseModel):
    model_config = Open
    user_id: StrictStr | None = None


class OutputFormat(BaseModel):
    model_config = Open
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(BaseModel):
    model_config = Open
    format: OutputFormat | None = None


class MessagesRequest(BaseModel):
    """The fields of `POST /v1/messages` the gateway translates; others are accepted."""

    model_config = Open
    model: StrictStr = Field(min_length=1)
    max_tokens: StrictInt = Field(ge=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: StrictStr | list[TextBlock] | None = None
    stop_sequences: list[StrictStr] | None = None
    stream: StrictBool | None = None
    temperature: Number | None = Field(None, ge=0, le=1)
    top_p: Number | None = Field(None, ge=0, le=1)
    top_k: StrictInt | None = Field(None, ge=0)
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None


# ------------------------------------------------------------------------ validation


def validate_request(data: dict[str, Any]) -> MessagesRequest:
    """The validated request, or a 400 whose message names the field as Anthropic does."""
    try:
        request = MessagesRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, data) from None
    if request.tool_choice and request.tool_choice.type == "tool" and not request.tool_choice.name:
        raise bad_request("tool_choice.name: Field required", param="tool_choice.name")
    return request


def _invalid(exc: ValidationError, data: Any) -> GatewayError:
    """The most specific problem: with `str | list` fields, the branch the input took."""
    found = [
        (error_path(e["loc"], data, e["type"] == "missing"), e["msg"])
        for e in exc.errors(include_url=False)
    ]
    path, message = max(found, key=lambda item: item[0].count("."))
    others = {p for p, _ in found if not path.startswith(p)}
    more = f" (and {len(others)} more problems)" if others else ""
    return bad_request(f"{path}: {message}{more}", param=path, code="invalid_value")


def error_path(loc: Sequence[int | str], data: Any, missing: bool) -> str:
    """The dotted path of an error in the client's JSON, without pydantic's union tags.

    A part of `loc` is kept when it indexes into the input; the last part of a `missing`
    error names the absent field, so it is kept too.
    """
    parts: list[str] = []
    for position, part in enumerate(loc):
        if _indexes(data, part):
            data = data[part]
        elif not (missing and position == len(loc) - 1):
            continue
        parts.append(str(part))
    return ".".join(parts) or "body"


def _indexes(data: Any, part: int | str) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)


# ------------------------------------------------------------------------ request translation


def to_openai_request(request: MessagesRequest) -> dict[str, Any]:
    """The canonical (OpenAI chat-completions) body for an Anthropic Messages request."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": openai_messages(request),
        "max_tokens": request.max_tokens,
    }
    for name in ("temperature", "top_p"):
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
    if request.stream:
        body["stream"] = True
    return body


def openai_response_format(output: OutputFormat) -> dict[str, Any]:
    """Structured output: OpenAI wants the schema named; Anthropic's has no name."""
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": output.schema_}}


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
        elif isinstance(block, TextBlock | ImageBlock):
            parts.append(content_part(block))
    if parts:
        tools.append({"role": "user", "content": parts_content(parts)})
    return tools


def tool_result_content(block: ToolResultBlock) -> tuple[str, list[dict[str, Any]]]:
    """A tool result's text, and its images (OpenAI tool messages carry text only)."""
    if block.content is None or isinstance(block.content, str):
        return block.content or "", []
    text = "\n".join(part.text for part in block.content if isinstance(part, TextBlock))
    images = [content_part(part) for part in block.content if isinstance(part, ImageBlock)]
    return text, images


def content_part(block: TextBlock | ImageBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def parts_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone text part as a plain string (every OpenAI-compatible server takes that)."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def assistant_message(content: str | list[Any]) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = "".join(block.text for block in content if isinstance(block, TextBlock))
    calls = [tool_call(block) for block in content if isinstance(block, ToolUseBlock)]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return message


def tool_call(block: ToolUseBlock) -> dict[str, Any]:
    arguments = json.dumps(block.input, separators=(",", ":"), ensure_ascii=False)
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


# ------------------------------------------------------------------------ answers

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def new_message_id(upstream_id: Any = None) -> str:
    """An Anthropic message id: the upstream's own when it is one, else a fresh `msg_` id."""
    if isinstance(upstream_id, str) and upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + uuid.uuid4().hex[:24]


def stop_reason(choice: dict[str, Any], stop_sequences: Sequence[str]) -> tuple[str, str | None]:
    """Anthropic's `stop_reason` and `stop_sequence` for a canonical choice.

    OpenAI does not say which stop sequence ended the answer; servers that do (vLLM's
    `stop_reason`, a `stop_sequence` field) are believed when it is one the client sent.
    """
    finish = choice.get("finish_reason")
    if finish == "stop":
        for key in ("stop_sequence", "stop_reason"):
            matched = choice.get(key)
            if isinstance(matched, str) and matched in stop_sequences:
                return "stop_sequence", matched
    return FINISH_TO_STOP.get(finish if isinstance(finish, str) else "", "end_turn"), None


def anthropic_usage(usage: Any) -> dict[str, int]:
    """Anthropic usage from OpenAI usage: cached prompt tokens are not `input_tokens` there."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    out = {
        "input_tokens": max(_int(usage.get("prompt_tokens")) - cached, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not content and isinstance(message.get("refusal"), str):
        content = message["refusal"]
    return content if isinstance(content, str) else ""


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` must be ({} if unparsable)."""
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or "",
        "name": function.get("name") or "",
        "input": tool_input(function.get("arguments")),
    }


def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if text := message_text(message):
        blocks.append({"type": "text", "text": text})
    blocks.extend(tool_use_block(call) for call in message.get("tool_calls") or [])
    return blocks


def to_anthropic_message(
    body: dict[str, Any], *, model: str, stop_sequences: Sequence[str], message_id: str
) -> dict[str, Any]:
    """An Anthropic `message` for a canonical `chat.completion` (its first choice)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reason, sequence = stop_reason(choice, stop_sequences)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model") if isinstance(body.get("model"), str) else model,
        "content": content_blocks(choice.get("message") or {}),
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(body.get("usage")),
    }


# ------------------------------------------------------------------------ errors

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_KNOWN_TYPES = frozenset(ERROR_TYPES.values())


def error_type(error: GatewayError) -> str:
    """Anthropic's error type: by status, else the error's own type when Anthropic has it."""
    if error.status in ERROR_TYPES:
        return ERROR_TYPES[error.status]
    if error.type in _KNOWN_TYPES:
        return error.type
    return "api_error" if error.status >= 500 else "invalid_request_error"


def error_object(error: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(error), "message": error.message}}


# ------------------------------------------------------------------------ streams


def message_start(message_id: str, model: str, input_tokens: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(reason: str, sequence: str | None, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": sequence},
        "usage": usage,
    }


class StreamTranslator:
    """Canonical chunks in, Anthropic stream events (dicts) out, as soon as each is known.

    Blocks open and close in order: text, then each tool call as its first delta arrives.
    `message_delta` waits for the usage chunk (which follows the finish chunk) or `end()`.
    """

    def __init__(self, message_id: str, model: str, stop_sequences: Sequence[str] = ()) -> None:
        self.message_id = message_id
        self.model = model
        self.stop_sequences = tuple(stop_sequences)
        self.started = False
        self.delta_sent = False
        self.next_index = 0
        self.open: tuple[str, int] | None = None  # ("text" | "tool:<n>", block index)
        self.tools: dict[int, int] = {}  # OpenAI tool_call index -> block index
        self.finish: tuple[str, str | None] | None = None
        self.usage: dict[str, int] | None = None

    def events(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out = [] if self.started else [self._start(chunk)]
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            out.extend(self._choice(choices[0]))
        if isinstance(chunk.get("usage"), dict):
            self.usage = anthropic_usage(chunk["usage"])
            if self.finish is not None and not self.delta_sent:
                out.append(self._delta())
        return out

    def end(self) -> list[dict[str, Any]]:
        out = [] if self.started else [self._start({})]
        out.extend(self._close())
        if not self.delta_sent:
            out.append(self._delta())
        out.append({"type": "message_stop"})
        return out

    def _start(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self.started = True
        model = chunk.get("model")
        self.model = model if isinstance(model, str) and model else self.model
        if isinstance(chunk.get("id"), str) and chunk["id"].startswith("msg_"):
            self.message_id = chunk["id"]
        usage = anthropic_usage(chunk.get("usage")) if isinstance(chunk.get("usage"), dict) else {}
        return message_start(self.message_id, self.model, usage.get("input_tokens", 0))

    def _choice(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        delta = choice.get("delta")
        out: list[dict[str, Any]] = []
        if isinstance(delta, dict):
            out.extend(self._text(delta.get("content") or delta.get("refusal")))
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out.extend(self._tool(call))
        if choice.get("finish_reason") and self.finish is None:
            self.finish = stop_reason(choice, self.stop_sequences)
            out.extend(self._close())
        return out

    def _text(self, text: Any) -> list[dict[str, Any]]:
        if not isinstance(text, str) or not text:
            return []
        out = [] if self.open and self.open[0] == "text" else self._open("text", _TEXT_BLOCK)
        assert self.open is not None
        out.append(block_delta(self.open[1], {"type": "text_delta", "text": text}))
        return out

    def _tool(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        index = call.get("index")
        position = index if isinstance(index, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        out = [] if position in self.tools else self._open_tool(position, call, function)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(block_delta(self.tools[position], delta))
        return out

    def _open_tool(
        self, position: int, call: dict[str, Any], function: dict[str, Any]
    ) -> list[dict[str, Any]]:
        name = function.get("name") or ""
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": call.get("id") or "",
            "name": name,
            "input": {},
        }
        out = self._open(f"tool:{position}", block)
        self.tools[position] = self.next_index - 1
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        self.open = (kind, self.next_index)
        self.next_index += 1
        return [*out, block_start(self.open[1], dict(block))]

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        index, self.open = self.open[1], None
        return [block_stop(index)]

    def _delta(self) -> dict[str, Any]:
        self.delta_sent = True
        reason, sequence = self.finish or ("end_turn", None)
        usage = self.usage or {"output_tokens": 0}
        return message_delta(reason, sequence, usage)


_TEXT_BLOCK: dict[str, Any] = {"type": "text", "text": ""}


def sse(event: dict[str, Any]) -> bytes:
    """One Anthropic event on the wire: `event: <type>` and its JSON."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return encode_event(data, event["type"])


class AnthropicStreamEncoder:
    """The ingress `StreamEncoder`: canonical chunks to Anthropic SSE bytes."""

    content_type = "text/event-stream"

    def __init__(self, message_id: str, model: str, stop_sequences: Sequence[str] = ()) -> None:
        self.translator = StreamTranslator(message_id, model, stop_sequences)

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return b"".join(sse(event) for event in self.translator.events(chunk))

    def end(self) -> bytes:
        return b"".join(sse(event) for event in self.translator.end())

    def error(self, error: GatewayError) -> bytes:
        return sse(error_object(error))
