"""The Anthropic Messages wire API on the same-API lane: its policy views and stream scanner.

The view reads every text of a Messages body (system, text blocks, tool results, tool inputs,
text documents) and adds messages the way Anthropic takes them (system text as system
blocks; appended user text merged into a last user turn). Streams pass as the upstream's
events; only `message_start`, `message_delta`, `message_stop` and `error` are parsed (usage,
the end, failures); with a text filter, `text_delta`s are edited per content block and what a
filter holds is released right before the block's `content_block_stop`.
"""

from __future__ import annotations

from typing import Any

from modelway.canonical import Usage
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.ingress import WireSupport
from modelway.nativestream import SSEStream, event_json, frame
from modelway.plugins.ingress.anthropic.errors import error_object
from modelway.plugins.ingress.openai.native import OtherView
from modelway.viewkit import (
    SettingsView,
    dicts,
    object_string_segments,
    stop_list,
    text_segments,
)
from modelway.wire import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    PASSTHROUGH,
    Call,
    Segment,
    TextFilter,
)

FORWARD_HEADERS = (
    "anthropic-beta",
    "anthropic-version",
    "accept",
    "idempotency-key",
    "user-agent",
    "x-app",
    "x-claude-code-session-id",
    "anthropic-dangerous-direct-browser-access",
)
"""Client headers the same-API lane sends on: features, and who is calling (Claude Code
names itself and its session)."""

ERROR_STATUS = {
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


def anthropic_usage(data: Any, into: Usage | None = None) -> Usage | None:
    """Anthropic usage as gateway usage: `prompt_tokens` counts uncached input, cache writes
    and cache reads. Fields absent from `data` keep their value in `into`."""
    if not isinstance(data, dict):
        return into
    usage = into or Usage()
    fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    if any(isinstance(data.get(k), int) for k in fields):
        uncached, write, read = (_int(data.get(k)) for k in fields)
        usage.prompt_tokens = uncached + write + read
        usage.cached_tokens, usage.cache_write_tokens = read, write
    if isinstance(data.get("output_tokens"), int):
        usage.completion_tokens = data["output_tokens"]
    return usage


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --------------------------------------------------------------------------- request view


class MessagesView(SettingsView):
    """A Messages (or count_tokens) body."""

    paths = {"stop": ("stop_sequences",), "user": ("metadata", "user_id"), "seed": ()}

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._prepended = 0
        self._system_prepended = 0

    def get(self, name: str) -> Any:
        return None if self._path(name) == () else super().get(name)

    def set(self, name: str, value: Any) -> None:
        if self._path(name) != ():  # a setting Anthropic has no field for is left out
            super().set(name, value)

    def to_wire(self, name: str, value: Any) -> Any:
        return stop_list(value) if name == "stop" else value

    def segments(self) -> list[Segment]:
        out = text_segments(self.body, "system", "system", "system", self.edited)
        for message in dicts(self.body.get("messages")):
            role = str(message.get("role", "user"))
            content = message.get("content")
            if isinstance(content, str):
                out.extend(text_segments(message, "content", role, "text", self.edited))
            for block in dicts(content):
                out.extend(self._block(role, block))
        return out

    def _block(self, role: str, block: dict[str, Any]) -> list[Segment]:
        kind = block.get("type")
        if kind == "text":
            return text_segments(block, "text", role, "text", self.edited)
        if kind == "tool_result":
            if isinstance(block.get("content"), str):
                return text_segments(block, "content", "tool", "tool_result", self.edited)
            return [
                s
                for part in dicts(block.get("content"))
                if part.get("type") == "text"
                for s in text_segments(part, "text", "tool", "tool_result", self.edited)
            ]
        if kind == "tool_use" and isinstance(block.get("input"), dict):
            return object_string_segments(block["input"], role, "tool_arguments", self.edited)
        source = block.get("source")
        if kind == "document" and isinstance(source, dict) and source.get("type") == "text":
            return text_segments(source, "data", role, "document", self.edited)
        return []

    def prepend(self, role: str, text: str) -> None:
        if role in ("system", "developer"):
            self._add_system(text, at=self._system_prepended)
            self._system_prepended += 1
        else:
            messages = self._messages()
            messages.insert(self._prepended, {"role": role, "content": text})
            self._prepended += 1
        self.edited()

    def append(self, role: str, text: str) -> None:
        if role in ("system", "developer"):
            self._add_system(text, at=None)
        else:
            self._append_message(role, text)
        self.edited()

    def _add_system(self, text: str, at: int | None) -> None:
        system = self.body.get("system")
        if system is None or system == "" or system == []:
            self.body["system"] = text
            return
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        block = {"type": "text", "text": text}
        blocks.insert(len(blocks) if at is None else at, block)
        self.body["system"] = blocks

    def _append_message(self, role: str, text: str) -> None:
        messages = self._messages()
        last = messages[-1] if messages and isinstance(messages[-1], dict) else None
        if last is None or last.get("role") != role:
            messages.append({"role": role, "content": text})
            return
        content = last.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list):
            messages.append({"role": role, "content": text})
            return
        blocks.append({"type": "text", "text": text})
        last["content"] = blocks

    def _messages(self) -> list[Any]:
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            messages = self.body["messages"] = []
        return messages


class MessageView:
    """A complete `message`: its text blocks."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.edited = False

    def _edited(self) -> None:
        self.edited = True

    def segments(self) -> list[Segment]:
        return [
            s
            for block in dicts(self.body.get("content"))
            if block.get("type") == "text"
            for s in text_segments(block, "text", "assistant", "text", self._edited)
        ]

    def drop_logprobs(self) -> None:
        """Anthropic answers carry no log-probabilities."""


# --------------------------------------------------------------------------- streams


def error_event(error: GatewayError) -> bytes:
    return frame(error_object(error), "error")


def _stream_error(data: Any) -> GatewayError:
    error = data.get("error") if isinstance(data, dict) else None
    fields = error if isinstance(error, dict) else {}
    kind = str(fields.get("type")) if isinstance(fields.get("type"), str) else "api_error"
    message = fields.get("message")
    return GatewayError(
        ERROR_STATUS.get(kind, 502),
        message if isinstance(message, str) and message else "the backend's stream failed",
        kind,
        "upstream_stream_error",
    )


_MARKERS = (
    b"event: message_",
    b"event: error",
    b'"type":"message_',
    b'"type": "message_',
    b'"type":"error"',
    b'"type": "error"',
)
"""What the events worth reading hold: message_start/delta/stop (usage, the end), errors."""


class MessagesStream(SSEStream):
    """A same-API Messages stream."""

    markers = _MARKERS

    def __init__(self, filters: list[TextFilter]) -> None:
        super().__init__(filters, rewrite=False)
        self._text_blocks: set[int] = set()
        self._pending: tuple[int, list[str]] | None = None
        """Text deltas read in this batch, not yet through the filters (one block at a time)."""

    def scan(self, event: bytes) -> None:
        self._note(event_json(event))

    def _note(self, data: Any) -> None:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "message_start":
            message = data.get("message")
            self.usage = anthropic_usage(
                message.get("usage") if isinstance(message, dict) else None
            )
        elif kind == "message_delta":
            self.usage = anthropic_usage(data.get("usage"), self.usage)
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            self.failed(_stream_error(data))

    async def _rewrite_all(self, events: list[bytes]) -> bytes:
        """A batch's text deltas go through the filters together (one analysis, not one per
        token), released as one delta event where they were."""
        out = await super()._rewrite_all(events)
        return out + b"".join(await self._flush())

    async def _flush(self) -> list[bytes]:
        if self._pending is None:
            return []
        (index, texts), self._pending = self._pending, None
        return await self._push(index, "".join(texts), False)

    async def rewrite(self, event: bytes) -> list[bytes]:
        data = event_json(event)
        text = _text_delta(data)
        if text is not None and _index(data.get("index")) in self._text_blocks:
            index = _index(data.get("index"))
            if self._pending is not None and self._pending[0] != index:
                held = await self._flush()
                self._pending = (index, [text])
                return held
            self._pending = (index, [*(self._pending[1] if self._pending else []), text])
            return []
        return [*(await self._flush()), *(await self._other(event, data))]

    async def _other(self, event: bytes, data: Any) -> list[bytes]:
        if not isinstance(data, dict):
            return [event + b"\n\n"]
        self._note(data)
        kind = data.get("type")
        index = data.get("index")
        if kind == "content_block_start" and _block_type(data) == "text":
            self._text_blocks.add(_index(index))
        elif kind == "content_block_stop" and _index(index) in self._text_blocks:
            self._text_blocks.discard(_index(index))
            held = await self._push(_index(index), "", True)
            return [*held, event + b"\n\n"]
        return [event + b"\n\n"]

    async def _push(self, index: int, text: str, final: bool) -> list[bytes]:
        for text_filter in self.filters:
            text = await text_filter.push(str(index), text, final)
        if not text:
            return []
        delta = {"type": "text_delta", "text": text}
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        return [frame(event, "content_block_delta")]

    def error_event(self, error: GatewayError) -> bytes:
        return error_event(error)


def _text_delta(data: Any) -> str | None:
    """The text of a `content_block_delta` event with a `text_delta`, else None."""
    if not isinstance(data, dict) or data.get("type") != "content_block_delta":
        return None
    delta = data.get("delta")
    if not isinstance(delta, dict) or delta.get("type") != "text_delta":
        return None
    text = delta.get("text")
    return text if isinstance(text, str) else ""


def _index(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _block_type(data: dict[str, Any]) -> Any:
    block = data.get("content_block")
    return block.get("type") if isinstance(block, dict) else None


# --------------------------------------------------------------------------- wire supports


class MessagesWire(WireSupport):
    name = ANTHROPIC_MESSAGES
    forward_headers = FORWARD_HEADERS
    answer_key: str | None = "content"

    def view(self, call: Call) -> MessagesView:
        return MessagesView(call)

    def usage(self, body: Any) -> Usage | None:
        return anthropic_usage(body.get("usage")) if isinstance(body, dict) else None

    def response_view(self, body: dict[str, Any]) -> MessageView:
        return MessageView(body)

    def native_stream(
        self, ctx: RequestContext, filters: list[TextFilter], strip_usage: bool
    ) -> MessagesStream:
        return MessagesStream(filters)


class CountTokensWire(MessagesWire):
    name = ANTHROPIC_COUNT_TOKENS
    answer_key = None

    def usage(self, body: Any) -> Usage | None:
        return None

    def response_view(self, body: dict[str, Any]) -> None:  # type: ignore[override]
        return None


class OtherWire(MessagesWire):
    """Anthropic's other endpoints (batches, files, models ...): a body with no messages to
    add to (`OtherView`), Anthropic's feature headers sent on."""

    name = PASSTHROUGH
    filterable_streams = False
    answer_key = None
    json_answers = False

    def view(self, call: Call) -> OtherView:
        return OtherView(call)

    def usage(self, body: Any) -> Usage | None:
        return None

    def response_view(self, body: dict[str, Any]) -> None:  # type: ignore[override]
        return None
