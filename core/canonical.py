"""Canonical request and response types that every stage of the request path shares.

The canonical chat format is the OpenAI chat-completions wire shape (a dict), because it is
the lingua franca most clients speak: ingress APIs decode into it, providers encode from it,
and stream events are OpenAI `chat.completion.chunk` dicts.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Any


class Operation(enum.StrEnum):
    """What a request asks for, whatever its wire API (the Responses API is `chat`)."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    MODELS = "models"
    COUNT_TOKENS = "count_tokens"
    OTHER = "other"
    """Any other provider endpoint, passed through to a backend of the same API."""


@dataclass(slots=True)
class Usage:
    """Token counts of one answer. `prompt_tokens` counts ALL input tokens (OpenAI's meaning):
    `cached_tokens` (cache reads) and `cache_write_tokens` (cache writes) are parts of it;
    `reasoning_tokens` is part of `completion_tokens`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens

    def to_openai(self) -> dict[str, Any]:
        """The canonical (OpenAI chat) usage object, with the hub's cache-write extension."""
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.cache_write_tokens:
            out["cache_creation_input_tokens"] = self.cache_write_tokens
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out

    @classmethod
    def from_openai(cls, data: Any) -> Usage | None:
        """Read an OpenAI `usage` object (with the hub's extensions); None when absent."""
        if not isinstance(data, dict):
            return None
        prompt = data.get("prompt_tokens_details")
        completion = data.get("completion_tokens_details")
        return cls(
            prompt_tokens=_int(data.get("prompt_tokens")),
            completion_tokens=_int(data.get("completion_tokens")),
            cached_tokens=_int(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0,
            cache_write_tokens=_int(data.get("cache_creation_input_tokens")),
            reasoning_tokens=(
                _int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0
            ),
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(slots=True)
class CanonicalRequest:
    """What the client asked for, in canonical (OpenAI) shape.

    `body` is the full request body; `model` and `stream` are read out of it once. Policies
    may edit `body` in place; providers encode it for their wire format.
    """

    operation: Operation
    model: str
    body: dict[str, Any]
    stream: bool = False
    client_wants_usage: bool = False


@dataclass(slots=True)
class UpstreamRequest:
    """One HTTP request a provider wants sent to its backend."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""
    timeout: float | None = None
    """The longest silence from the backend, in seconds (None: the transport's default;
    0: no limit). The attempt sets both from its timeouts."""
    connect_timeout: float | None = None
    stream: AsyncIterable[bytes] | None = None
    """A body sent as it is read instead of `body` (a pass-through upload: `modelway.uploads`)."""


@dataclass(slots=True)
class CanonicalResponse:
    """A complete (non-streamed) answer in canonical shape, plus what was learned about it."""

    body: dict[str, Any]
    usage: Usage | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
