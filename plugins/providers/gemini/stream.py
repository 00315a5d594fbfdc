"""Gemini's `streamGenerateContent?alt=sse` events as canonical `chat.completion.chunk`s.

`GeminiStreamTranslator` is the pure event-by-event translation; `GeminiStreamDecoder` is the
`StreamDecoder` of the `gemini` and `vertex` providers (the provider kit's SSE decoder base).
"""

from __future__ import annotations

from typing import Any

from modelway.plugins.providers.gemini.errors import error_from_google, error_status
from modelway.plugins.providers.gemini.reasoning import PartReasoning
from modelway.plugins.providers.gemini.response import (
    ResponseMeta,
    blocked,
    candidate_index,
    candidate_parts,
    finish_reason,
    openai_usage,
    response_key,
    response_model,
    tool_call,
)
from modelway.providerkit import SSEStreamDecoder, invalid_event, loads_or_none
from modelway.sse import SSEEvent

JSON = dict[str, Any]


class GeminiStreamTranslator:
    """Gemini stream events (each a GenerateContentResponse) to canonical chunks.

    Emits, per choice, a role chunk first, then reasoning, text and tool-call deltas as they
    arrive (a part's signature in the delta of the part it sat on), a finish chunk; `end()`
    adds the usage chunk from the last `usageMetadata`. An error event raises GatewayError.
    """

    def __init__(self, meta: ResponseMeta) -> None:
        self._meta = meta
        self._key = meta.fallback_id
        self._model = meta.model
        self._events = 0
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}
        self._reasoning: dict[int, PartReasoning] = {}
        self._usage: JSON | None = None

    def event(self, data: JSON) -> list[JSON]:
        if "error" in data:
            raise error_from_google(error_status(data, 502), data)
        if not self._events:
            self._key, self._model = (
                response_key(data, self._meta),
                response_model(data, self._meta),
            )
        self._events += 1
        self._usage = openai_usage(data.get("usageMetadata")) or self._usage
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        chunks: list[JSON] = []
        for position, candidate in enumerate(candidates):
            chunks.extend(self._candidate(candidate, candidate_index(candidate, position)))
        if not candidates and blocked(data):
            chunks.extend(self._start(0) + self._finish(0, "content_filter"))
        return chunks

    @property
    def complete(self) -> bool:
        """Whether every choice that started has finished (and at least one did)."""
        return bool(self._finished) and not self._started - self._finished

    def end(self) -> list[JSON]:
        """The usage chunk, from the last `usageMetadata` (call once the stream is complete)."""
        return [self._chunk([], self._usage)] if self._usage is not None else []

    def _candidate(self, candidate: JSON, index: int) -> list[JSON]:
        chunks = self._start(index)
        for part in candidate_parts(candidate):
            chunks.extend(self._part(index, part))
        reason = candidate.get("finishReason")
        if reason:
            chunks.extend(self._finish(index, finish_reason(reason, index in self._calls)))
        return chunks

    def _part(self, index: int, part: JSON) -> list[JSON]:
        thought = part.get("thought") is True
        is_call = isinstance(part.get("functionCall"), dict) and not thought
        number = self._calls.get(index, 0)
        reader = self._reasoning.setdefault(index, PartReasoning(self._meta.reasoning))
        delta = reader.read(part, number if is_call else None)
        text = part.get("text")
        if isinstance(text, str) and not thought:
            if text:
                delta["content"] = text
        elif is_call:
            self._calls[index] = number + 1
            call = tool_call(part, self._key, index, number)
            delta["tool_calls"] = [{"index": number, **call}]
        return [self._delta(index, delta)] if delta else []

    def _start(self, index: int) -> list[JSON]:
        if index in self._started:
            return []
        self._started.add(index)
        return [self._delta(index, {"role": "assistant", "content": ""})]

    def _finish(self, index: int, reason: str) -> list[JSON]:
        if index in self._finished:
            return []
        self._finished.add(index)
        choice = {"index": index, "delta": {}, "finish_reason": reason, "logprobs": None}
        return [self._chunk([choice])]

    def _delta(self, index: int, delta: JSON) -> JSON:
        return self._chunk(
            [{"index": index, "delta": delta, "finish_reason": None, "logprobs": None}]
        )

    def _chunk(self, choices: list[JSON], usage: JSON | None = None) -> JSON:
        chunk: JSON = {
            "id": f"chatcmpl-{self._key}",
            "object": "chat.completion.chunk",
            "created": self._meta.created,
            "model": self._model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk


class GeminiStreamDecoder(SSEStreamDecoder):
    """`streamGenerateContent?alt=sse` bytes to canonical chunks (a `StreamDecoder`).

    A failure (an error event, an event that is not a JSON object, a stream that ends before
    every choice finished) becomes one in-order error chunk after the chunks before it;
    nothing follows.
    """

    def __init__(self, meta: ResponseMeta) -> None:
        super().__init__()
        self._translator = GeminiStreamTranslator(meta)

    @property
    def complete(self) -> bool:
        return self._translator.complete

    def translate(self, event: SSEEvent) -> list[JSON]:
        data = loads_or_none(event.data)
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise invalid_event()
        return self._translator.event(data)

    def finish(self) -> list[JSON]:
        return self._translator.end()
