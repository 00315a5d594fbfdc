"""Canonical `chat.completion.chunk`s as Gemini `streamGenerateContent?alt=sse` events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelway.errors import GatewayError
from modelway.plugins.ingress.gemini.errors import error_object
from modelway.plugins.ingress.gemini.reasoning import delta_parts
from modelway.plugins.ingress.gemini.response import (
    finish_reason,
    function_call_part,
    response_id,
    text_of,
    usage_metadata,
)
from modelway.providerkit import as_dict, as_int, dumps

JSON = dict[str, Any]


def sse(event: JSON) -> bytes:
    """One Gemini stream event (`alt=sse`), CRLF line ends as Google sends them."""
    return b"data: " + dumps(event) + b"\r\n\r\n"


@dataclass
class _Choice:
    """What one streamed choice has pending: tool calls (sent whole) and its finish."""

    calls: dict[int, JSON] = field(default_factory=dict)
    finish: str | None = None


class GeminiStreamEncoder:
    """The ingress `StreamEncoder`: canonical chunks to `streamGenerateContent?alt=sse` events.

    Text goes out as soon as it arrives. Gemini sends a function call whole, so tool-call
    deltas are gathered and sent with the choice's finish; the finishing event waits for the
    usage chunk that follows the finish (or the end) so it carries `usageMetadata`, as
    Google's last event does.
    """

    content_type = "text/event-stream"

    def __init__(self, model: str) -> None:
        self.model = model
        self.response_id: str | None = None
        self.choices: dict[int, _Choice] = {}
        self.usage: JSON | None = None
        self.finished = False

    def encode(self, chunk: dict[str, Any]) -> bytes:
        self._identify(chunk)
        out = b""
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                out += self._choice(choice)
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_metadata(chunk["usage"])
            if any(c.finish for c in self.choices.values()):
                out += self._final()
        return out

    def end(self) -> bytes:
        return b"" if self.finished else self._final()

    def error(self, error: GatewayError) -> bytes:
        return sse(error_object(error))

    def _identify(self, chunk: JSON) -> None:
        if self.response_id is None and isinstance(chunk.get("id"), str):
            self.response_id = response_id(chunk["id"])
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]

    def _choice(self, choice: JSON) -> bytes:
        index = as_int(choice.get("index"), 0)
        state = self.choices.setdefault(index, _Choice())
        delta = as_dict(choice.get("delta"))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                _gather(state.calls, call)
        if choice.get("finish_reason"):
            state.finish = finish_reason(choice["finish_reason"])
        parts = delta_parts(delta)
        if text := text_of(delta.get("content")) or text_of(delta.get("refusal")):
            parts.append({"text": text})
        if not parts:
            return b""
        return sse(self._event([{"content": _model_content(parts), "index": index}]))

    def _final(self) -> bytes:
        self.finished = True
        choices = self.choices or {0: _Choice()}
        candidates = [_final_candidate(index, state) for index, state in sorted(choices.items())]
        event = self._event(candidates)
        if self.usage is not None:
            event["usageMetadata"] = self.usage
        return sse(event)

    def _event(self, candidates: list[JSON]) -> JSON:
        return {
            "candidates": candidates,
            "modelVersion": self.model,
            "responseId": self.response_id or "",
        }


def _gather(calls: dict[int, JSON], delta: JSON) -> None:
    """Merge one tool-call delta into the call it continues (by its index)."""
    number = as_int(delta.get("index"), len(calls))
    call = calls.setdefault(number, {"id": None, "function": {"name": "", "arguments": ""}})
    if isinstance(delta.get("id"), str) and delta["id"]:
        call["id"] = delta["id"]
    if isinstance(delta.get("extra_content"), dict):
        call["extra_content"] = delta["extra_content"]
    function = as_dict(delta.get("function"))
    for key in ("name", "arguments"):
        if isinstance(function.get(key), str):
            call["function"][key] += function[key]


def _model_content(parts: list[JSON]) -> JSON:
    return {"role": "model", "parts": parts}


def _final_candidate(index: int, state: _Choice) -> JSON:
    parts = [function_call_part(state.calls[n]) for n in sorted(state.calls)]
    out: JSON = {"content": _model_content([p for p in parts if p is not None])}
    out["finishReason"] = state.finish or "STOP"
    out["index"] = index
    return out
