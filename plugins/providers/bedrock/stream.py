"""Bedrock ConverseStream events as canonical `chat.completion.chunk`s.

`ConverseStreamTranslator` is the pure event-by-event translation; `BedrockStreamDecoder` is
the provider's `StreamDecoder`: the eventstream codec, then the translator, on the provider
kit's decoder base (an exception message or a stream cut before `messageStop` ends the stream
with one error chunk).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from modelway.plugins.providers.bedrock.errors import stream_exception
from modelway.plugins.providers.bedrock.eventstream import EventMessage, EventStreamDecoder
from modelway.plugins.providers.bedrock.response import finish_reason, openai_usage
from modelway.providerkit import StreamDecoderBase, as_dict, as_int, event_object

JSON = dict[str, Any]


class ConverseStreamTranslator:
    """ConverseStream events (by `:event-type`) as OpenAI chunks, one event at a time.

    Order out: a role chunk, text and tool-call deltas (id and name first, then argument
    fragments), the finish chunk (`messageStop`), then a usage chunk (`metadata`).
    """

    def __init__(self, response_id: str, model: str, created: int) -> None:
        self._base = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._role_sent = False
        self.stopped = False
        """Whether `messageStop`, the end of the answer, has arrived."""
        self._tool_index: dict[int, int] = {}
        self._handlers: dict[str, Callable[[Mapping[str, Any]], list[JSON]]] = {
            "messageStart": self._message_start,
            "contentBlockStart": self._block_start,
            "contentBlockDelta": self._block_delta,
            "messageStop": self._message_stop,
            "metadata": self._metadata,
        }

    def event(self, event_type: str, payload: Mapping[str, Any]) -> list[JSON]:
        """The chunks one event becomes (none for `contentBlockStop` and unknown events)."""
        handler = self._handlers.get(event_type)
        return handler(payload) if handler else []

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**self._base, "choices": [choice]}

    def _with_role(self, chunks: list[JSON]) -> list[JSON]:
        if self._role_sent:
            return chunks
        self._role_sent = True
        return [self._chunk({"role": "assistant", "content": ""}), *chunks]

    def _message_start(self, payload: Mapping[str, Any]) -> list[JSON]:
        return self._with_role([])

    def _block_start(self, payload: Mapping[str, Any]) -> list[JSON]:
        tool_use = as_dict(payload.get("start")).get("toolUse")
        if not isinstance(tool_use, Mapping):
            return []
        index = self._tool_index.setdefault(
            as_int(payload.get("contentBlockIndex")), len(self._tool_index)
        )
        call = {
            "index": index,
            "id": tool_use.get("toolUseId"),
            "type": "function",
            "function": {"name": tool_use.get("name"), "arguments": ""},
        }
        return self._with_role([self._chunk({"tool_calls": [call]})])

    def _block_delta(self, payload: Mapping[str, Any]) -> list[JSON]:
        delta = as_dict(payload.get("delta"))
        if isinstance(delta.get("text"), str):
            return self._with_role([self._chunk({"content": delta["text"]})])
        tool_use = delta.get("toolUse")
        if not isinstance(tool_use, Mapping) or not isinstance(tool_use.get("input"), str):
            return []  # reasoning, citations and other deltas have no OpenAI equivalent
        index = self._tool_index.get(as_int(payload.get("contentBlockIndex")), 0)
        call = {"index": index, "function": {"arguments": tool_use["input"]}}
        return self._with_role([self._chunk({"tool_calls": [call]})])

    def _message_stop(self, payload: Mapping[str, Any]) -> list[JSON]:
        self.stopped = True
        return self._with_role([self._chunk({}, finish_reason(payload.get("stopReason")))])

    def _metadata(self, payload: Mapping[str, Any]) -> list[JSON]:
        usage = openai_usage(payload.get("usage"))
        return [] if usage is None else [{**self._base, "choices": [], "usage": usage}]


class BedrockStreamDecoder(StreamDecoderBase[EventMessage]):
    """ConverseStream bytes to canonical chunks. An exception message, a broken frame or a
    stream that ends before `messageStop` becomes one error chunk after the chunks of the
    events before it; nothing follows it."""

    def __init__(self, translator: ConverseStreamTranslator) -> None:
        super().__init__()
        self._frames = EventStreamDecoder()
        self._translator = translator

    @property
    def complete(self) -> bool:
        return self._translator.stopped

    def frames(self, data: bytes) -> list[EventMessage]:
        return self._frames.feed(data)

    def last_frames(self) -> list[EventMessage]:
        self._frames.close()
        return []

    def translate(self, event: EventMessage) -> list[JSON]:
        if (event.header(":message-type") or "event") != "event":
            raise stream_exception(event)
        payload = event_object(event.payload or b"{}")
        return self._translator.event(event.header(":event-type") or "", payload)
