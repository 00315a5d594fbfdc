"""Anthropic's streamed Messages (SSE events) as canonical `chat.completion.chunk`s.

`StreamTranslator` is the pure event-by-event translation; `AnthropicStreamDecoder` is the
provider's `StreamDecoder` (the provider kit's SSE decoder base around the translator).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelway.hubext import REASONING_CONTENT, REASONING_SIGNATURE, REDACTED_REASONING
from modelway.plugins.providers.anthropic.errors import error_from_event
from modelway.plugins.providers.anthropic.response import (
    dump_arguments,
    finish_reason,
    stop_fields,
    usage_from_anthropic,
)
from modelway.providerkit import SSEStreamDecoder, as_dict, event_object
from modelway.sse import SSEEvent

Json = dict[str, Any]


@dataclass(slots=True)
class _ToolBlock:
    index: int
    start_input: Any
    sent: bool = False


class StreamTranslator:
    """Anthropic stream events (parsed JSON objects) to canonical `chat.completion.chunk`s.

    Feed events in order with `event`; call `end` when the stream ends. The chunks are: the
    role, text deltas, tool-call deltas (id and name first, then `arguments` pieces), the
    finish reason, then a usage chunk `{"choices": [], "usage": ...}`. An `error` event
    raises GatewayError; the stream is `complete` once `message_delta` has arrived.
    """

    def __init__(self, *, created: int) -> None:
        self.created = created
        self.id = ""
        self.model = ""
        self.usage: Json = {}
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self._tools: dict[Any, _ToolBlock] = {}
        self._text_seen = False
        self._delta_seen = False
        self._done = False

    def event(self, data: Json) -> list[Json]:
        handler = _HANDLERS.get(str(data.get("type")))
        return handler(self, data) if handler is not None and not self._done else []

    @property
    def complete(self) -> bool:
        """Whether `message_delta` (the stop reason and final usage) has arrived."""
        return self._delta_seen

    def end(self) -> list[Json]:
        """The finish and usage chunks if `message_stop` did not already send them."""
        return [] if self._done else self._finish()

    def chunk(self, delta: Json, finish: str | None = None) -> Json:
        """A canonical chunk with one choice carrying `delta`."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**self._head(), "choices": [choice]}

    def _head(self) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _message_start(self, data: Json) -> list[Json]:
        message = as_dict(data.get("message"))
        self.id = str(message.get("id") or "")
        self.model = str(message.get("model") or "")
        self._add_usage(message.get("usage"))
        start = self.chunk({"role": "assistant"})
        if self.usage:  # the prompt's tokens, known before the answer: the hub's early usage
            start["usage"] = usage_from_anthropic(self.usage)
        return [start]

    def _block_start(self, data: Json) -> list[Json]:
        block = as_dict(data.get("content_block"))
        kind = block.get("type")
        if kind == "text":
            return self._text(str(block.get("text") or ""), force=not self._text_seen)
        if kind == "tool_use":
            return self._tool_start(data.get("index"), block)
        if kind == "thinking" and block.get("thinking"):
            return [self.chunk({REASONING_CONTENT: str(block["thinking"])})]
        if kind == "redacted_thinking" and isinstance(block.get("data"), str):
            return [self.chunk({REDACTED_REASONING: block["data"]})]
        return []

    def _text(self, text: str, force: bool = False) -> list[Json]:
        self._text_seen = True
        return [self.chunk({"content": text})] if text or force else []

    def _tool_start(self, index: Any, block: Json) -> list[Json]:
        tool = _ToolBlock(len(self._tools), block.get("input"))
        self._tools[index] = tool
        call = {
            "index": tool.index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self.chunk({"tool_calls": [call]})]

    def _block_delta(self, data: Json) -> list[Json]:
        delta = as_dict(data.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(str(delta.get("text") or ""))
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self.chunk({REASONING_CONTENT: str(delta["thinking"])})]
        if kind == "signature_delta" and isinstance(delta.get("signature"), str):
            return [self.chunk({REASONING_SIGNATURE: delta["signature"]})]
        tool = self._tools.get(data.get("index"))
        if kind == "input_json_delta" and tool is not None:
            return self._arguments(tool, str(delta.get("partial_json") or ""))
        return []

    def _arguments(self, tool: _ToolBlock, piece: str) -> list[Json]:
        if not piece:
            return []
        tool.sent = True
        call = {"index": tool.index, "function": {"arguments": piece}}
        return [self.chunk({"tool_calls": [call]})]

    def _block_stop(self, data: Json) -> list[Json]:
        tool = self._tools.get(data.get("index"))
        if tool is None or tool.sent:
            return []
        return self._arguments(tool, dump_arguments(tool.start_input))

    def _message_delta(self, data: Json) -> list[Json]:
        self._delta_seen = True
        delta = as_dict(data.get("delta"))
        if delta.get("stop_reason") is not None:
            self.stop_reason = delta["stop_reason"]
        if isinstance(delta.get("stop_sequence"), str):
            self.stop_sequence = delta["stop_sequence"]
        self._add_usage(data.get("usage"))
        return []

    def _message_stop(self, data: Json) -> list[Json]:
        return self._finish()

    def _finish(self) -> list[Json]:
        self._done = True
        usage = {**self._head(), "choices": [], "usage": usage_from_anthropic(self.usage)}
        finish = self.chunk({}, finish_reason(self.stop_reason))
        finish["choices"][0].update(stop_fields(self.stop_reason, self.stop_sequence))
        return [finish, usage]

    def _add_usage(self, usage: Any) -> None:
        """Usage counts are cumulative: later values replace earlier ones."""
        if isinstance(usage, dict):
            self.usage.update({k: v for k, v in usage.items() if v is not None})

    def _error(self, data: Json) -> list[Json]:
        raise error_from_event(data)


_HANDLERS: dict[str, Callable[[StreamTranslator, Json], list[Json]]] = {
    "message_start": StreamTranslator._message_start,
    "content_block_start": StreamTranslator._block_start,
    "content_block_delta": StreamTranslator._block_delta,
    "content_block_stop": StreamTranslator._block_stop,
    "message_delta": StreamTranslator._message_delta,
    "message_stop": StreamTranslator._message_stop,
    "error": StreamTranslator._error,
}
"""Event types the translator acts on; `ping` and unknown types are skipped."""


class AnthropicStreamDecoder(SSEStreamDecoder):
    """Anthropic SSE bytes to canonical chunks, event by event.

    A failure (an `error` event, an event that is not a JSON object, a stream that ends
    before `message_delta`) becomes one error chunk after the chunks that came before it;
    nothing follows it.
    """

    def __init__(self, created: int) -> None:
        super().__init__()
        self._translator = StreamTranslator(created=created)

    @property
    def complete(self) -> bool:
        return self._translator.complete

    def translate(self, event: SSEEvent) -> list[Json]:
        data = event_object(event.data)
        if "type" not in data and event.event:
            data["type"] = event.event
        return self._translator.event(data)

    def finish(self) -> list[Json]:
        return self._translator.end()
