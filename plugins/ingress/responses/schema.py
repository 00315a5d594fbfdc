"""Validation models for `POST /v1/responses`: types are checked, unknown fields kept.

Only what the translation relies on is typed; every other field is accepted and ignored,
so a client that sends newer parameters is not refused. Item and tool types are checked
before these models run (see `request.py`), so a model here only sees a known type.
"""

from __future__ import annotations

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
)

Open = ConfigDict(extra="allow")
Number = StrictInt | StrictFloat

# --------------------------------------------------------------------------- content parts


class InputText(BaseModel):
    model_config = Open
    type: Literal["input_text"]
    text: StrictStr


class InputImage(BaseModel):
    model_config = Open
    type: Literal["input_image"]
    image_url: StrictStr | None = None
    file_id: StrictStr | None = None
    detail: Literal["low", "high", "auto", "original"] | None = None


class InputFile(BaseModel):
    model_config = Open
    type: Literal["input_file"]
    file_data: StrictStr | None = None
    file_id: StrictStr | None = None
    file_url: StrictStr | None = None
    filename: StrictStr | None = None


class OutputText(BaseModel):
    model_config = Open
    type: Literal["output_text"]
    text: StrictStr


class Refusal(BaseModel):
    model_config = Open
    type: Literal["refusal"]
    refusal: StrictStr


Part = Annotated[
    InputText | InputImage | InputFile | OutputText | Refusal, Field(discriminator="type")
]
OutputPart = Annotated[InputText | InputImage | InputFile, Field(discriminator="type")]

# ------------------------------------------------------------------------------------ items


class MessageItem(BaseModel):
    model_config = Open
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: StrictStr | list[Part]
    id: StrictStr | None = None


class FunctionCallItem(BaseModel):
    model_config = Open
    type: Literal["function_call"]
    call_id: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    arguments: StrictStr
    namespace: StrictStr | None = None
    id: StrictStr | None = None


class FunctionCallOutputItem(BaseModel):
    model_config = Open
    type: Literal["function_call_output"]
    call_id: StrictStr = Field(min_length=1)
    output: StrictStr | list[OutputPart]
    id: StrictStr | None = None


class CustomToolCallItem(BaseModel):
    model_config = Open
    type: Literal["custom_tool_call"]
    call_id: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    input: StrictStr
    namespace: StrictStr | None = None
    id: StrictStr | None = None


class CustomToolCallOutputItem(BaseModel):
    model_config = Open
    type: Literal["custom_tool_call_output"]
    call_id: StrictStr = Field(min_length=1)
    output: StrictStr | list[OutputPart]
    id: StrictStr | None = None


class SummaryText(BaseModel):
    model_config = Open
    type: Literal["summary_text"]
    text: StrictStr


class ReasoningItem(BaseModel):
    model_config = Open
    type: Literal["reasoning"]
    summary: list[SummaryText] = []
    encrypted_content: StrictStr | None = None
    id: StrictStr | None = None


class ItemReference(BaseModel):
    model_config = Open
    type: Literal["item_reference"]
    id: StrictStr = Field(min_length=1)


class ToolSearchCallItem(BaseModel):
    """A client-run `tool_search` call; its output brings more tools into play."""

    model_config = Open
    type: Literal["tool_search_call"]
    arguments: Any = None
    call_id: StrictStr | None = None
    id: StrictStr | None = None


class ToolSearchOutputItem(BaseModel):
    model_config = Open
    type: Literal["tool_search_output"]
    tools: list[dict[str, Any]] = []
    call_id: StrictStr | None = None
    id: StrictStr | None = None


class AdditionalToolsItem(BaseModel):
    """Tools a client (Codex) adds in the middle of the input; they join `tools`."""

    model_config = Open
    type: Literal["additional_tools"]
    tools: list[dict[str, Any]]


def _item_type(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type", "message")
    return getattr(value, "type", None)


Item = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")]
    | Annotated[ToolSearchCallItem, Tag("tool_search_call")]
    | Annotated[ToolSearchOutputItem, Tag("tool_search_output")]
    | Annotated[AdditionalToolsItem, Tag("additional_tools")],
    Discriminator(_item_type),
]
ITEM_TYPES = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "reasoning",
        "item_reference",
        "tool_search_call",
        "tool_search_output",
        "additional_tools",
    }
)

# ------------------------------------------------------------------------------------ tools


class FunctionTool(BaseModel):
    model_config = Open
    type: Literal["function"]
    name: StrictStr = Field(min_length=1, max_length=128)
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class CustomFormat(BaseModel):
    model_config = Open
    type: Literal["text", "grammar"]
    syntax: StrictStr | None = None
    definition: StrictStr | None = None


class CustomTool(BaseModel):
    model_config = Open
    type: Literal["custom"]
    name: StrictStr = Field(min_length=1, max_length=128)
    description: StrictStr | None = None
    format: CustomFormat | None = None


class ToolSearchTool(BaseModel):
    """`tool_search` run by the client (`execution: "client"`) is an ordinary function."""

    model_config = Open
    type: Literal["tool_search"]
    execution: Literal["client"]
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None


class NamespaceTool(BaseModel):
    model_config = Open
    type: Literal["namespace"]
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    tools: list[Annotated[FunctionTool | CustomTool, Field(discriminator="type")]]


Tool = Annotated[
    FunctionTool | CustomTool | ToolSearchTool | NamespaceTool, Field(discriminator="type")
]

# ------------------------------------------------------------------------ request settings


class FormatText(BaseModel):
    model_config = Open
    type: Literal["text"]


class FormatJSONObject(BaseModel):
    model_config = Open
    type: Literal["json_object"]


class FormatJSONSchema(BaseModel):
    model_config = Open
    type: Literal["json_schema"]
    name: StrictStr = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    description: StrictStr | None = None
    strict: StrictBool | None = None


class TextConfig(BaseModel):
    model_config = Open
    format: Annotated[
        FormatText | FormatJSONObject | FormatJSONSchema, Field(discriminator="type")
    ] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class ReasoningConfig(BaseModel):
    model_config = Open
    effort: Effort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class NamedToolChoice(BaseModel):
    model_config = Open
    type: StrictStr
    name: StrictStr | None = None
    mode: Literal["auto", "required"] | None = None
    tools: list[dict[str, Any]] | None = None


class ResponsesRequest(BaseModel):
    """The fields of `POST /v1/responses` the translation reads; others are accepted."""

    model_config = Open
    model: StrictStr = Field(min_length=1)
    input: StrictStr | list[Item] = []
    instructions: StrictStr | None = None
    previous_response_id: StrictStr | None = None
    store: StrictBool | None = None
    stream: StrictBool | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: StrictInt | None = Field(None, ge=1)
    temperature: Number | None = Field(None, ge=0, le=2)
    top_p: Number | None = Field(None, ge=0, le=1)
    top_logprobs: StrictInt | None = Field(None, ge=0, le=20)
    metadata: dict[str, StrictStr] | None = Field(None, max_length=16)
    user: StrictStr | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[StrictStr] | None = None
    background: StrictBool | None = None
