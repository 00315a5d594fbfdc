"""Validation models for OpenAI-shaped requests: types are checked, unknown fields kept.

Only what the gateway must rely on is typed strictly; every other field passes through to
the backend untouched, so new OpenAI parameters work without a gateway release.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

Open = ConfigDict(extra="allow")


class Message(BaseModel):
    model_config = Open
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[dict[str, Any]] | None = None
    name: StrictStr | None = None


class StreamOptions(BaseModel):
    model_config = Open
    include_usage: StrictBool | None = None


class ChatCompletionRequest(BaseModel):
    model_config = Open
    model: StrictStr = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    temperature: StrictFloat | None = Field(None, ge=0, le=2)
    top_p: StrictFloat | None = Field(None, ge=0, le=1)
    presence_penalty: StrictFloat | None = Field(None, ge=-2, le=2)
    frequency_penalty: StrictFloat | None = Field(None, ge=-2, le=2)
    n: StrictInt | None = Field(None, ge=1, le=128)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    stop: StrictStr | list[StrictStr] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    user: StrictStr | None = None


class EmbeddingsRequest(BaseModel):
    model_config = Open
    model: StrictStr = Field(min_length=1)
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: StrictInt | None = Field(None, ge=1)
    user: StrictStr | None = None
