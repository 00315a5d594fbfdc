"""The OpenAI wire APIs on the same-API lane: chat completions, embeddings, other endpoints.

Chat streams pass as the upstream's bytes. Only the events that can carry usage, an error or
the end are parsed; the usage-only chunk the gateway asked for on the client's behalf is
removed again; with a text filter (PII masking) or a stream that may be continued on another
backend, each event is decoded and its `delta.content` edited.
"""

from __future__ import annotations

import re
from typing import Any

from modelway import jsonx
from modelway.canonical import Usage
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.hubview import ChatRequestView, ChatResponseView, ChunkTextEditor
from modelway.ingress import WireSupport
from modelway.nativestream import SSEStream, event_json, frame
from modelway.sse import event_data
from modelway.viewkit import SettingsView, text_segments, writer
from modelway.wire import (
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    PASSTHROUGH,
    Call,
    Segment,
    TextFilter,
)

FORWARD_HEADERS = ("openai-beta", "idempotency-key", "accept")
_DONE = b"data: [DONE]"
_USAGE = (b'"usage":{', b'"usage": {')
_MARKERS = (b"[DONE]", *_USAGE, b'"finish_reason":"', b'"finish_reason": "', b'"error":')
"""What the events worth reading hold: the end, usage, a finish, an error."""
_NULL_USAGE = re.compile(rb',\s*"usage":\s*null')
"""The `usage: null` of every chunk when the gateway asked for usage the client did not."""


def error_object(error: GatewayError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def stream_error(error: GatewayError) -> bytes:
    return frame(error_object(error))


class ChatStream(SSEStream):
    """A same-API chat-completions stream.

    Block mode (no filter, no continuation): the bytes pass as read; when the gateway asked
    for usage the client did not, complete events pass instead, without the usage-only chunk
    and the `usage: null` fields, still without parsing the other events.
    """

    markers = _MARKERS

    def __init__(self, filters: list[TextFilter], strip_usage: bool, track_text: bool) -> None:
        super().__init__(filters, rewrite=track_text)
        self.strip_usage = strip_usage
        self.track_text = track_text
        self.editor = ChunkTextEditor(filters) if filters else None
        self.text: list[str] = []
        self.has_tool_calls = False
        self._usage_events: list[bytes] = []
        self._pending: list[dict[str, Any]] = []
        """Chunks read in this batch, not yet through the filters."""

    @property
    def can_continue(self) -> bool:
        return self.track_text and not self.has_tool_calls and bool(self.text)

    def scan(self, event: bytes) -> None:
        if event.startswith(_DONE):
            self.complete = True
            return
        chunk = event_json(event)
        self._note(chunk)
        usage_only = isinstance(chunk, dict) and chunk.get("usage") and not chunk.get("choices")
        if self.strip_usage and usage_only:
            self._usage_events.append(event)

    def pass_block(
        self, data: bytes, block: bytes, hits: list[bytes], closing: bool = False
    ) -> bytes:
        if not self.strip_usage:
            return data
        for event in self._usage_events:  # the usage chunk the client did not ask for
            if closing:
                block = b"" if block.strip() == event.strip() else block
            else:
                block = block.replace(event + b"\n\n", b"", 1)
        self._usage_events.clear()
        if b'"usage":null' in block:
            block = block.replace(b',"usage":null', b"")
        if b'"usage": null' in block:
            block = _NULL_USAGE.sub(b"", block)
        return block

    def _note(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            self.failed(_invalid())
            return
        if "error" in chunk and not chunk.get("choices"):
            self.failed(_stream_failure(chunk))
            return
        raw = chunk.get("usage")
        if raw is not None:
            usage = Usage.from_openai(raw)
            if usage is not None:
                self.usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self.complete = True
            if self.track_text:
                self._track(choice)

    def _track(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            self.has_tool_calls = True
        if choice.get("index", 0) == 0 and isinstance(delta.get("content"), str):
            self.text.append(delta["content"])

    async def _rewrite_all(self, events: list[bytes]) -> bytes:
        """With a filter, a batch's chunks are decoded in one call and edited together (runs
        of text deltas merged: one analysis, not one per token)."""
        if self.editor is None:
            return await super()._rewrite_all(events)
        out: list[bytes] = []
        for event, chunk in zip(events, decode_batch(events), strict=True):
            if event.startswith(_DONE):
                self.complete = True
                out += [*(await self._edit_pending()), *(await self._held()), event + b"\n\n"]
                continue
            self._note(chunk)
            if self.error is not None or not isinstance(chunk, dict):
                out += [*(await self._edit_pending()), self._as_sent(event)]
                break
            if self.strip_usage and chunk.pop("usage", None) and not chunk.get("choices"):
                continue
            self._pending.append(chunk)
        return b"".join(out) + b"".join(await self._edit_pending())

    async def _edit_pending(self) -> list[bytes]:
        if self.editor is None or not self._pending:
            return []
        pending, self._pending = self._pending, []
        return [frame(c) for c in await self.editor.edit_all(pending)]

    async def rewrite(self, event: bytes) -> list[bytes]:
        if event.startswith(_DONE):
            self.complete = True
            return [*(await self._edit_pending()), *(await self._held()), event + b"\n\n"]
        if self.strip_usage:
            event = _NULL_USAGE.sub(b"", event)
        chunk = event_json(event)
        self._note(chunk)
        if self.error is not None or not isinstance(chunk, dict):
            return [event + b"\n\n"]
        if self.strip_usage and chunk.get("usage") and not chunk.get("choices"):
            return []
        if self.strip_usage:
            chunk.pop("usage", None)
        if self.editor is None:
            return [event + b"\n\n"]
        self._pending.append(chunk)
        return []

    def _as_sent(self, event: bytes) -> bytes:
        """A raw event as the client gets it (without the `usage: null` it did not ask for)."""
        return (_NULL_USAGE.sub(b"", event) if self.strip_usage else event) + b"\n\n"

    async def _held(self) -> list[bytes]:
        return [frame(c) for c in await self.editor.end()] if self.editor else []

    async def flush(self) -> bytes:
        return b"".join(await self._held())

    def error_event(self, error: GatewayError) -> bytes:
        return stream_error(error)


def decode_batch(events: list[bytes]) -> list[Any]:
    """The JSON data of each event (None for `[DONE]`), parsed as one array in one call; when
    one event is not JSON, each is parsed alone (None for that one, as `event_json` does).
    An event cannot spread over two items: an empty data would make the array invalid."""
    datas = [
        event[6:] if event.startswith(b"data: ") and b"\n" not in event else event_data(event)
        for event in events
    ]
    try:
        found = jsonx.loads(b"[" + b",".join(b"null" if d == b"[DONE]" else d for d in datas)
                            + b"]")
    except ValueError:
        found = None
    if isinstance(found, list) and len(found) == len(events):
        return found
    return [event_json(event) for event in events]


def _invalid() -> GatewayError:
    return GatewayError(
        502,
        "the backend's stream has an event that is not JSON",
        "server_error",
        "upstream_invalid_stream",
    )


def _stream_failure(chunk: dict[str, Any]) -> GatewayError:
    error = chunk.get("error")
    fields = error if isinstance(error, dict) else {}
    message = fields.get("message")
    code = fields.get("code")
    return GatewayError(
        502,
        message if isinstance(message, str) and message else "the backend's stream failed",
        "server_error",
        code if isinstance(code, str) else "upstream_stream_error",
    )


class ChatWire(WireSupport):
    name = OPENAI_CHAT
    forward_headers = FORWARD_HEADERS
    continuable = True
    answer_key = "choices"

    def view(self, call: Call) -> ChatRequestView:
        return ChatRequestView(call)

    def usage(self, body: Any) -> Usage | None:
        return Usage.from_openai(body.get("usage")) if isinstance(body, dict) else None

    def response_view(self, body: dict[str, Any]) -> ChatResponseView:
        return ChatResponseView(body)

    def native_stream(
        self, ctx: RequestContext, filters: list[TextFilter], strip_usage: bool
    ) -> ChatStream:
        failover = ctx.route.config.failover if ctx.route else None
        track = bool(failover and failover.continue_streams)
        return ChatStream(filters, strip_usage, track)


class EmbeddingsWire(ChatWire):
    name = OPENAI_EMBEDDINGS
    answer_key = "data"

    def response_view(self, body: dict[str, Any]) -> None:
        return None


class OtherView(SettingsView):
    """Any other OpenAI endpoint: its `prompt` and `input` texts, top-level settings."""

    def segments(self) -> list[Segment]:
        out: list[Segment] = []
        for key in ("prompt", "input"):
            value = self.body.get(key)
            if isinstance(value, str):
                out.extend(text_segments(self.body, key, "user", "input", self.edited))
            elif isinstance(value, list):
                out.extend(
                    Segment("user", "input", item, writer(value, index, self.edited))
                    for index, item in enumerate(value)
                    if isinstance(item, str)
                )
        return out

    def prepend(self, role: str, text: str) -> None:
        """Other endpoints have no messages to add to."""

    def append(self, role: str, text: str) -> None:
        """Other endpoints have no messages to add to."""


class OtherStream(SSEStream):
    """A stream of another endpoint (`/v1/completions`): passed as it is, usage noted."""

    markers = (b"[DONE]", *_USAGE)

    def __init__(self) -> None:
        super().__init__([], rewrite=False)

    def scan(self, event: bytes) -> None:
        if event.startswith(_DONE):
            self.complete = True
            return
        if any(marker in event for marker in _USAGE):
            chunk = event_json(event)
            if isinstance(chunk, dict):
                found = Usage.from_openai(chunk.get("usage"))
                if found is not None:
                    self.usage = found

    async def rewrite(self, event: bytes) -> list[bytes]:
        self.scan(event)
        return [event + b"\n\n"]

    async def close(self) -> bytes:
        self.complete = True  # other streams may have no end marker
        return await super().close()

    def error_event(self, error: GatewayError) -> bytes:
        return stream_error(error)


class OtherWire(WireSupport):
    name = PASSTHROUGH
    forward_headers = FORWARD_HEADERS
    filterable_streams = False
    json_answers = False

    def view(self, call: Call) -> OtherView:
        return OtherView(call)

    def usage(self, body: Any) -> Usage | None:
        return Usage.from_openai(body.get("usage")) if isinstance(body, dict) else None

    def native_stream(
        self, ctx: RequestContext, filters: list[TextFilter], strip_usage: bool
    ) -> OtherStream:
        return OtherStream()
