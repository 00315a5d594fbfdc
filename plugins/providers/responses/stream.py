"""A Responses API event stream as hub `chat.completion.chunk`s.

Text, refusal and reasoning-summary deltas become `content`, `refusal` and
`reasoning_content` deltas; each function call gets a tool-call index in the order the
calls open, with its argument deltas; a finished reasoning item with encrypted content
gives a `reasoning_item` delta (`{"id", "encrypted_content"}`, the stream form of the
`reasoning_items` message extension). `response.completed` / `response.incomplete` give the
finish chunk and the usage chunk. Failures come back in order as error chunks
(`{"error": {"message", "type", "code", "status"}}`): an `error` event, `response.failed`,
an event that is not JSON, or a stream that ends before the response finished.
"""

from __future__ import annotations

import json
from typing import Any

from modelway.errors import GatewayError
from modelway.plugins.providers.responses.request import as_dict
from modelway.plugins.providers.responses.response import (
    ERROR_STATUSES,
    FINISH_REASONS,
    chat_usage,
    failed,
)
from modelway.sse import SSEDecoder

Json = dict[str, Any]


def error_chunk(error: GatewayError) -> Json:
    return {"error": {"message": error.message, "type": error.type, "code": error.code,
                      "status": error.status}}


def _error(message: str, code: str, status: int = 502) -> Json:
    return {"error": {"message": message, "type": "server_error", "code": code,
                      "status": status}}


class ResponsesStreamDecoder:
    """Feed the backend's SSE bytes; get hub chunks back."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._head: Json = {"id": "", "object": "chat.completion.chunk", "created": 0,
                            "model": ""}
        self._calls: dict[str, int] = {}
        """Tool-call index by item id."""
        self._arguments: dict[str, str] = {}
        self._custom: set[str] = set()
        """Item ids of custom tool calls (their deltas are `custom.input`)."""
        self._summary_parts: set[tuple[str, int]] = set()
        self._has_reasoning = False
        self._done = False
        self._failed = False

    def feed(self, data: bytes) -> list[Json]:
        return self._chunks(self._sse.feed(data))

    def close(self) -> list[Json]:
        chunks = self._chunks(self._sse.close())
        if not self._done and not self._failed:
            self._failed = True
            chunks.append(_error("the backend's stream ended before the response was complete",
                                 "upstream_stream_truncated"))
        return chunks

    def _chunks(self, events: list[Any]) -> list[Json]:
        out: list[Json] = []
        for event in events:
            if self._done or self._failed:
                break
            try:
                data = json.loads(event.data)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                self._failed = True
                out.append(_error("the backend's stream has an event that is not a JSON object",
                                  "upstream_invalid_stream"))
                break
            out.extend(self._event(str(data.get("type") or event.event or ""), data))
        return out

    # ------------------------------------------------------------------------- events

    def _event(self, kind: str, data: Json) -> list[Json]:
        handler = _HANDLERS.get(kind)
        return handler(self, data) if handler else []

    def _created(self, data: Json) -> list[Json]:
        response = as_dict(data.get("response"))
        self._head.update(
            id=str(response.get("id") or ""),
            created=int(response.get("created_at") or 0),
            model=str(response.get("model") or ""),
        )
        return [self._chunk({"role": "assistant", "content": ""})]

    def _text(self, data: Json) -> list[Json]:
        return [self._chunk({"content": str(data.get("delta") or "")})]

    def _refusal(self, data: Json) -> list[Json]:
        return [self._chunk({"refusal": str(data.get("delta") or "")})]

    def _summary(self, data: Json) -> list[Json]:
        """Summary parts are joined with a blank line, as `from_response` joins them."""
        text = str(data.get("delta") or "")
        part = (str(data.get("item_id")), int(data.get("summary_index") or 0))
        if part not in self._summary_parts:
            self._summary_parts.add(part)
            if self._has_reasoning:
                text = "\n\n" + text
        self._has_reasoning = True
        return [self._chunk({"reasoning_content": text})] if text else []

    def _item_added(self, data: Json) -> list[Json]:
        item = as_dict(data.get("item"))
        if item.get("type") not in ("function_call", "custom_tool_call"):
            return []
        item_id = str(item.get("id") or data.get("output_index"))
        index = self._calls[item_id] = len(self._calls)
        self._arguments[item_id] = ""
        call: Json = {"index": index, "id": item.get("call_id"), "type": "function",
                      "function": {"name": item.get("name"), "arguments": ""}}
        if item["type"] == "custom_tool_call":
            self._custom.add(item_id)
            call = {"index": index, "id": item.get("call_id"), "type": "custom",
                    "custom": {"name": item.get("name"), "input": ""}}
        return [self._chunk({"tool_calls": [call]})]

    def _arguments_delta(self, data: Json) -> list[Json]:
        item_id = str(data.get("item_id"))
        if item_id not in self._calls:
            return []
        delta = str(data.get("delta") or "")
        self._arguments[item_id] += delta
        return [self._call_delta(item_id, delta)]

    def _item_done(self, data: Json) -> list[Json]:
        item = as_dict(data.get("item"))
        if item.get("type") == "reasoning" and item.get("encrypted_content"):
            kept = {"id": item.get("id"), "encrypted_content": item["encrypted_content"]}
            return [self._chunk({"reasoning_item": kept})]
        item_id = str(item.get("id"))
        if item_id not in self._calls:
            return []
        full = str(item.get("arguments") if "arguments" in item else item.get("input") or "")
        sent = self._arguments[item_id]
        if len(full) > len(sent) and full.startswith(sent):
            self._arguments[item_id] = full
            return [self._call_delta(item_id, full[len(sent):])]
        return []

    def _call_delta(self, item_id: str, delta: str) -> Json:
        call: Json = {"index": self._calls[item_id], "function": {"arguments": delta}}
        if item_id in self._custom:
            call = {"index": call["index"], "custom": {"input": delta}}
        return self._chunk({"tool_calls": [call]})

    def _finished(self, data: Json) -> list[Json]:
        self._done = True
        response = as_dict(data.get("response"))
        reason = as_dict(response.get("incomplete_details")).get("reason")
        finish = "tool_calls" if self._calls else "stop"
        if response.get("status") == "incomplete" or data.get("type") == "response.incomplete":
            finish = FINISH_REASONS.get(str(reason), "length")
        chunk = self._chunk({})
        chunk["choices"][0]["finish_reason"] = finish
        if reason:
            chunk["choices"][0]["native_finish_reason"] = reason
        chunks = [chunk]
        usage = chat_usage(response.get("usage"))
        if usage is not None:
            chunks.append({**self._head, "choices": [], "usage": usage})
        return chunks

    def _response_failed(self, data: Json) -> list[Json]:
        self._failed = True
        response = as_dict(data.get("response"))
        return [error_chunk(failed(response.get("error")))]

    def _error_event(self, data: Json) -> list[Json]:
        self._failed = True
        code = str(data.get("code") or "upstream_stream_error")
        message = data.get("message")
        return [_error(message if isinstance(message, str) and message
                       else "the backend's stream failed", code, ERROR_STATUSES.get(code, 502))]

    def _chunk(self, delta: Json) -> Json:
        return {**self._head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


_HANDLERS = {
    "response.created": ResponsesStreamDecoder._created,
    "response.output_text.delta": ResponsesStreamDecoder._text,
    "response.refusal.delta": ResponsesStreamDecoder._refusal,
    "response.reasoning_summary_text.delta": ResponsesStreamDecoder._summary,
    "response.reasoning_text.delta": ResponsesStreamDecoder._summary,
    "response.output_item.added": ResponsesStreamDecoder._item_added,
    "response.function_call_arguments.delta": ResponsesStreamDecoder._arguments_delta,
    "response.custom_tool_call_input.delta": ResponsesStreamDecoder._arguments_delta,
    "response.output_item.done": ResponsesStreamDecoder._item_done,
    "response.completed": ResponsesStreamDecoder._finished,
    "response.incomplete": ResponsesStreamDecoder._finished,
    "response.failed": ResponsesStreamDecoder._response_failed,
    "error": ResponsesStreamDecoder._error_event,
}
