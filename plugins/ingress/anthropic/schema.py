"""The Anthropic Messages request (`POST /v1/messages`) as pydantic models, and its validation.

Unknown fields are accepted (the translation carries them as `anthropic_unknown`), and so are
content blocks of types the translation does not know (`OtherBlock`: server tool blocks, MCP
blocks, a future type); a problem is a 400 whose message names the field the way Anthropic's
API does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    model_validator,
)

from modelway.errors import GatewayError, bad_request

Open = ConfigDict(extra="allow")
Number = StrictInt | StrictFloat


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


class DocumentBlock(BaseModel):
    """A document (PDF or text); its `source` is read by the translation."""

    model_config = Open
    type: Literal["document"]
    source: dict[str, Any]
    title: StrictStr | None = None


class OtherBlock(BaseModel):
    """A block of a type the translation does not know (`server_tool_use`,
    `web_search_tool_result`, `mcp_tool_use`, `container_upload`, a future one): carried as
    sent to backends of Anthropic's API, a 400 elsewhere."""

    model_config = Open
    type: StrictStr


def _tagged(known: frozenset[str]) -> Discriminator:
    """A discriminator by `type`, with every type not in `known` tagged `other`."""

    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return kind if isinstance(kind, str) and kind in known else "other"

    return Discriminator(tag)


ToolResultPart = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[OtherBlock, Tag("other")],
    _tagged(frozenset({"text", "image", "document"})),
]


class ToolResultBlock(BaseModel):
    model_config = Open
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[ToolResultPart] | None = None
    is_error: StrictBool | None = None


class ThinkingBlock(BaseModel):
    """Extended-thinking blocks a client sends back (the hub's `thinking_blocks`)."""

    model_config = Open
    type: Literal["thinking", "redacted_thinking"]
    thinking: StrictStr | None = None
    signature: StrictStr | None = None
    data: StrictStr | None = None


_BLOCK_TYPES = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)
ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[ThinkingBlock, Tag("redacted_thinking")]
    | Annotated[OtherBlock, Tag("other")],
    _tagged(_BLOCK_TYPES),
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
    "user": (TextBlock, ImageBlock, DocumentBlock, ToolResultBlock, OtherBlock),
    "assistant": (TextBlock, ToolUseBlock, ThinkingBlock, OtherBlock),
}


class ToolParam(BaseModel):
    model_config = Open
    type: Literal["custom"] | None = None
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    input_schema: dict[str, Any]
    strict: StrictBool | None = None


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
    effort: StrictStr | None = None


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
    thinking: dict[str, Any] | None = None


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
