"""What a client sent, in its own wire API, and the views policies use to read and edit it.

Each ingress API decodes a request into a `Call`: the client's body as sent (parsed, and the
raw bytes), tagged with its wire API (`openai.chat`, `anthropic.messages`, ...). A backend
whose provider speaks the same wire API receives that body itself (the same-API lane), patched
only where configuration says; any other backend receives a translation through the hub (the
canonical OpenAI-chat shape). Policies never depend on either shape: they read and edit a
`RequestView` (text segments, messages to add, portable settings) that every wire API
implements over its own body, a `ResponseView` over a complete answer, and stream text through
a `TextFilter` that every wire API's stream editor applies to its own events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelway import jsonx
from modelway.canonical import Operation

# Wire APIs of the built-in ingress APIs and providers. Third-party plugins may add their own.
OPENAI_CHAT = "openai.chat"
OPENAI_EMBEDDINGS = "openai.embeddings"
OPENAI_RESPONSES = "openai.responses"
PASSTHROUGH = "passthrough"
"""Any other endpoint of a provider's API (`/v1/completions`, `/v1/files`, Gemini's
`cachedContents` ...): the request goes as it is to the base URL of a backend that forwards
raw requests, with the backend's credentials."""
ANTHROPIC_MESSAGES = "anthropic.messages"
ANTHROPIC_COUNT_TOKENS = "anthropic.count_tokens"
GEMINI_GENERATE = "gemini.generate"
GEMINI_COUNT_TOKENS = "gemini.count_tokens"

PORTABLE_SETTINGS = ("temperature", "top_p", "top_k", "max_tokens", "stop", "seed", "user")
"""Settings every chat wire API maps to its own field (`max_tokens` is Anthropic's
`max_tokens`, Gemini's `generationConfig.maxOutputTokens`, Responses' `max_output_tokens`).
Any other name is a top-level field of the wire body, set or removed as named."""


@dataclass(slots=True, eq=False)
class Segment:
    """One editable text of a request or an answer: who said it, what kind of text it is.

    `kind` is `text` (message text), `system` (instructions), `tool_arguments` (a string value
    inside a tool call's arguments), `tool_result` (text returned by a tool), `input` (an
    embeddings or moderation input). Setting `text` writes it back into the wire body.
    """

    role: str
    kind: str
    text: str
    write: Callable[[str], None] = field(repr=False)

    def set(self, text: str) -> None:
        if text != self.text:
            self.write(text)
            self.text = text


class RequestView(Protocol):
    """A wire body as policies see it: written once, implemented by every wire API."""

    def segments(self) -> list[Segment]:
        """Every text the request carries, in order (images, audio and files excluded)."""
        ...

    def prepend(self, role: str, text: str) -> None:
        """Add a message before the client's messages (`system` goes to the instructions)."""
        ...

    def append(self, role: str, text: str) -> None:
        """Add a message after the client's messages."""
        ...

    def get(self, name: str) -> Any:
        """A portable setting (see PORTABLE_SETTINGS) or a top-level field; None if unset."""
        ...

    def set(self, name: str, value: Any) -> None: ...

    def remove(self, name: str) -> bool:
        """Drop a setting; True if it was there."""
        ...


class ResponseView(Protocol):
    """A complete answer as policies see it."""

    def segments(self) -> list[Segment]:
        """The answer's texts (choice or candidate order), role `assistant`."""
        ...

    def drop_logprobs(self) -> None:
        """Remove token log-probabilities, which repeat the raw text."""
        ...


class TextFilter(Protocol):
    """Edits streamed answer text, channel by channel (a choice, a content block ...).

    `push` gets each new piece and returns the text that may be released now (it may hold
    some back); with `final` the channel ends and everything held must be released. Raising
    a GatewayError ends the stream with that error.
    """

    async def push(self, channel: str, text: str, final: bool) -> str: ...


@dataclass(slots=True, eq=False)
class Call:
    """A client's request as it arrived, in its own wire API.

    `body` is the parsed JSON body (empty for a body that is not JSON); `raw` the bytes as sent.
    The same-API lane sends `raw` unchanged unless `edited` (a policy or the route changed the
    body), in which case `body` is encoded again. `path` is the endpoint path below the API's
    version prefix (with the query string) for pass-through endpoints.
    """

    wire: str
    operation: Operation
    model: str
    body: dict[str, Any]
    raw: bytes
    stream: bool = False
    wants_usage: bool = False
    """The client asked for usage in its stream (OpenAI `stream_options.include_usage`)."""
    method: str = "POST"
    path: str = ""
    query: str = ""
    content_type: str = "application/json"
    """The client's content type (empty when it sent none, as a GET does)."""
    edited: bool = False
    view: RequestView | None = field(default=None, repr=False)
    policy_fields: set[str] = field(default_factory=set)
    """Top-level body fields a policy set through the view (`set`): a lane may leave out
    one the backend's API version forbids, where the client's own value would pass."""

    def mark_edited(self) -> None:
        self.edited = True

    def encoded(self, **changes: Any) -> bytes:
        """The body to send: the raw bytes when nothing changed, else `body` with the
        top-level `changes` applied (a value None removes the field), encoded again."""
        changed = {k: v for k, v in changes.items() if self.body.get(k) != v}
        if not changed and not self.edited:
            return self.raw
        body = {**self.body, **changed}
        for key in [k for k, v in changed.items() if v is None]:
            del body[key]
        return jsonx.dumps(body)
