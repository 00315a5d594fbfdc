"""Canonical `chat.completion.chunk`s as Anthropic stream events, chunk for chunk.

`StreamTranslator` makes the events (`message_start`, `content_block_*`, `message_delta`,
`message_stop`) as soon as each is known; `AnthropicStreamEncoder` is the ingress
`StreamEncoder` that writes them as SSE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelway.errors import GatewayError
from modelway.hubext import REASONING_CONTENT, REASONING_SIGNATURE, REDACTED_REASONING
from modelway.plugins.ingress.anthropic.errors import error_object
from modelway.plugins.ingress.anthropic.response import anthropic_usage, stop_reason
from modelway.providerkit import dumps


def message_start(message_id: str, model: str, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, **usage, "output_tokens": usage.get("output_tokens", 0)},
    }
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(reason: str, sequence: str | None, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": sequence},
        "usage": usage,
    }


class StreamTranslator:
    """Canonical chunks in, Anthropic stream events (dicts) out, as soon as each is known.

    Blocks open and close in order: text, then each tool call as its first delta arrives.
    `message_delta` waits for the usage chunk (which follows the finish chunk) or `end()`.
    """

    def __init__(self, message_id: str, model: str, stop_sequences: Sequence[str] = ()) -> None:
        self.message_id = message_id
        self.model = model
        self.stop_sequences = tuple(stop_sequences)
        self.started = False
        self.delta_sent = False
        self.next_index = 0
        self.open: tuple[str, int] | None = None  # ("text" | "tool:<n>", block index)
        self.tools: dict[int, int] = {}  # OpenAI tool_call index -> block index
        self.finish: tuple[str, str | None] | None = None
        self.usage: dict[str, int] | None = None

    def events(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out = [] if self.started else [self._start(chunk)]
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            out.extend(self._choice(choices[0]))
        if isinstance(chunk.get("usage"), dict):
            self.usage = anthropic_usage(chunk["usage"])
            if self.finish is not None and not self.delta_sent:
                out.append(self._delta())
        return out

    def end(self) -> list[dict[str, Any]]:
        out = [] if self.started else [self._start({})]
        out.extend(self._close())
        if not self.delta_sent:
            out.append(self._delta())
        out.append({"type": "message_stop"})
        return out

    def _start(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self.started = True
        model = chunk.get("model")
        self.model = model if isinstance(model, str) and model else self.model
        if isinstance(chunk.get("id"), str) and chunk["id"].startswith("msg_"):
            self.message_id = chunk["id"]
        usage = anthropic_usage(chunk.get("usage")) if isinstance(chunk.get("usage"), dict) else {}
        return message_start(self.message_id, self.model, usage)

    def _choice(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        delta = choice.get("delta")
        out: list[dict[str, Any]] = []
        if isinstance(delta, dict):
            if not _REASONING_KEYS.isdisjoint(delta):
                out.extend(self._thinking(delta))
            out.extend(self._text(delta.get("content") or delta.get("refusal")))
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out.extend(self._tool(call))
        if choice.get("finish_reason") and self.finish is None:
            self.finish = stop_reason(choice, self.stop_sequences)
            out.extend(self._close())
        return out

    def _text(self, text: Any) -> list[dict[str, Any]]:
        if not isinstance(text, str) or not text:
            return []
        out = [] if self.open and self.open[0] == "text" else self._open("text", _TEXT_BLOCK)
        assert self.open is not None
        out.append(block_delta(self.open[1], {"type": "text_delta", "text": text}))
        return out

    def _thinking(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        """Reasoning text as a thinking block; a signature closes it; redacted data is a
        block of its own."""
        out: list[dict[str, Any]] = []
        text, signature = delta.get(REASONING_CONTENT), delta.get(REASONING_SIGNATURE)
        if isinstance(text, str) and text:
            if not (self.open and self.open[0] == "thinking"):
                out.extend(self._open("thinking", _THINKING_BLOCK))
            assert self.open is not None
            out.append(block_delta(self.open[1], {"type": "thinking_delta", "thinking": text}))
        if isinstance(signature, str):
            if not (self.open and self.open[0] == "thinking"):
                out.extend(self._open("thinking", _THINKING_BLOCK))
            assert self.open is not None
            out.append(
                block_delta(self.open[1], {"type": "signature_delta", "signature": signature})
            )
            out.extend(self._close())
        redacted = delta.get(REDACTED_REASONING)
        if isinstance(redacted, str):
            out.extend(self._open("redacted", {"type": "redacted_thinking", "data": redacted}))
            out.extend(self._close())
        return out

    def _tool(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        index = call.get("index")
        position = index if isinstance(index, int) else 0
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        out = [] if position in self.tools else self._open_tool(position, call, function)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(block_delta(self.tools[position], delta))
        return out

    def _open_tool(
        self, position: int, call: dict[str, Any], function: dict[str, Any]
    ) -> list[dict[str, Any]]:
        name = function.get("name") or ""
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": call.get("id") or "",
            "name": name,
            "input": {},
        }
        out = self._open(f"tool:{position}", block)
        self.tools[position] = self.next_index - 1
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close()
        self.open = (kind, self.next_index)
        self.next_index += 1
        return [*out, block_start(self.open[1], dict(block))]

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        index, self.open = self.open[1], None
        return [block_stop(index)]

    def _delta(self) -> dict[str, Any]:
        self.delta_sent = True
        reason, sequence = self.finish or ("end_turn", None)
        usage = self.usage or {"output_tokens": 0}
        return message_delta(reason, sequence, usage)


_TEXT_BLOCK: dict[str, Any] = {"type": "text", "text": ""}
_REASONING_KEYS = frozenset({REASONING_CONTENT, REASONING_SIGNATURE, REDACTED_REASONING})
_THINKING_BLOCK: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}


def sse(event: dict[str, Any]) -> bytes:
    """One Anthropic event on the wire: `event: <type>` and its JSON."""
    return b"event: " + event["type"].encode() + b"\ndata: " + dumps(event) + b"\n\n"


class AnthropicStreamEncoder:
    """The ingress `StreamEncoder`: canonical chunks to Anthropic SSE bytes."""

    content_type = "text/event-stream"

    def __init__(self, message_id: str, model: str, stop_sequences: Sequence[str] = ()) -> None:
        self.translator = StreamTranslator(message_id, model, stop_sequences)

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return b"".join(sse(event) for event in self.translator.events(chunk))

    def end(self) -> bytes:
        return b"".join(sse(event) for event in self.translator.end())

    def error(self, error: GatewayError) -> bytes:
        return sse(error_object(error))
