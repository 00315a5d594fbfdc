"""Canonical request and response types that every stage of the request path shares.

The canonical chat format is the OpenAI chat-completions wire shape (a dict), because it is
the lingua franca most clients speak: ingress APIs decode into it, providers encode from it,
and stream events are OpenAI `chat.completion.chunk` dicts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Operation(enum.StrEnum):
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    MODELS = "models"


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens

    @classmethod
    def from_openai(cls, data: Any) -> Usage | None:
        """Read an OpenAI `usage` object; None when absent or malformed."""
        if not isinstance(data, dict):
            return None
        details = data.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=_int(data.get("prompt_tokens")),
            completion_tokens=_int(data.get("completion_tokens")),
            cached_tokens=_int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
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


@dataclass(slots=True)
class CanonicalResponse:
    """A complete (non-streamed) answer in canonical shape, plus what was learned about it."""

    body: dict[str, Any]
    usage: Usage | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
