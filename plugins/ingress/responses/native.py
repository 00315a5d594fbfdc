"""The `openai.responses` wire on the same-API lane: its support, and its stream scanner.

A Responses backend's events pass to the client as they are. Only `response.created`,
`response.completed` / `response.incomplete` / `response.failed` and `error` are parsed:
the response id (to remember which backend keeps it), usage, the end, failures. With a text
filter (PII masking) every event is decoded: `response.output_text.delta`s are edited per
(item, content part), the full texts of the `.done`, `content_part.done`,
`output_item.done` and final `response` events are replaced by the edited ones, and the
events are numbered again (a filter may hold text back, so their count changes).
"""

from __future__ import annotations

from typing import Any

from modelway.canonical import Usage
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.ingress import WireSupport
from modelway.nativestream import SSEStream, event_json, frame
from modelway.plugins.ingress.responses.records import remember_kept
from modelway.plugins.ingress.responses.response import failure
from modelway.plugins.ingress.responses.view import OutputView, ResponsesRequestView
from modelway.plugins.providers.responses.response import failed
from modelway.sse import event_field
from modelway.viewkit import dicts
from modelway.wire import OPENAI_RESPONSES, Call, TextFilter

Json = dict[str, Any]
FORWARD_HEADERS = ("openai-beta", "idempotency-key")
_PARSED = frozenset(
    {b"response.created", b"response.completed", b"response.incomplete", b"response.failed",
     b"error"}
)
_FINAL = ("response.completed", "response.incomplete", "response.failed")


def usage_of(usage: Any) -> Usage | None:
    """Responses usage as gateway usage (input tokens count cached ones too)."""
    if not isinstance(usage, dict):
        return None
    inputs = _dict(usage.get("input_tokens_details"))
    outputs = _dict(usage.get("output_tokens_details"))
    return Usage(
        prompt_tokens=_int(usage.get("input_tokens")),
        completion_tokens=_int(usage.get("output_tokens")),
        cached_tokens=_int(inputs.get("cached_tokens")),
        cache_write_tokens=_int(inputs.get("cache_write_tokens")),
        reasoning_tokens=_int(outputs.get("reasoning_tokens")),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def error_events(error: GatewayError, response: Json, sequence: int) -> bytes:
    """`error` then `response.failed`, for a failure the gateway saw in a stream."""
    event = {"type": "error", "sequence_number": sequence, "code": error.code,
             "message": error.message, "param": error.param}
    failed_response = {**response, "status": "failed", "error": failure(error)}
    final = {"type": "response.failed", "sequence_number": sequence + 1,
             "response": failed_response}
    return frame(event, "error") + frame(final, "response.failed")


class ResponsesStream(SSEStream):
    """A same-API Responses stream."""

    markers = (b"response.created", b"response.completed", b"response.incomplete",
               b"response.failed", b"error")
    """The events `scan` parses (block mode): the response's id, its end and usage, errors."""

    def __init__(self, ctx: RequestContext, filters: list[TextFilter]) -> None:
        super().__init__(filters, rewrite=False)
        self.ctx = ctx
        self.response: Json = {"id": "", "object": "response", "status": "in_progress",
                               "output": []}
        self.sequence = 0
        self._texts: dict[str, str] = {}
        """The released (edited) text of each (item, content part) so far."""

    def scan(self, event: bytes) -> None:
        name = event_field(event, b"event")
        if name is not None and name.strip() not in _PARSED:
            return
        data = event_json(event)
        if isinstance(data, dict):
            self._note(data)

    def _note(self, data: Json) -> None:
        kind = data.get("type")
        if isinstance(data.get("sequence_number"), int):
            self.sequence = max(self.sequence, data["sequence_number"] + 1)
        response = data.get("response")
        if isinstance(response, dict):
            self.response = response
        if kind == "response.created" and isinstance(_dict(response).get("id"), str):
            remember_kept(self.ctx, response["id"])  # type: ignore[index]
        elif kind in ("response.completed", "response.incomplete"):
            self.complete = True
            self.usage = usage_of(_dict(response).get("usage"))
        elif kind == "response.failed":
            self.usage = usage_of(_dict(response).get("usage"))
            self.failed(failed(_dict(response).get("error")))
        elif kind == "error":
            self.failed(failed(data))

    async def rewrite(self, event: bytes) -> list[bytes]:
        data = event_json(event)
        if not isinstance(data, dict):
            return [event + b"\n\n"]
        self._note(data)
        kind = data.get("type")
        out: list[bytes] = []
        if kind == "response.output_text.delta":
            text = await self._push(_key(data), str(data.get("delta") or ""), False)
            if not text:
                return []
            data["delta"], data["logprobs"] = text, []
        elif kind == "response.output_text.done":
            key = _key(data)
            tail = await self._push(key, "", True)
            if tail:
                out.append(self._frame({**_where(data), "type": "response.output_text.delta",
                                        "delta": tail, "logprobs": []}))
            data["text"], data["logprobs"] = self._texts.get(key, ""), []
        elif kind == "response.content_part.done":
            _set_text(_dict(data.get("part")), self._texts.get(_key(data)))
        elif kind == "response.output_item.done":
            self._item_texts(_dict(data.get("item")))
        elif kind in _FINAL:
            for item in dicts(_dict(data.get("response")).get("output")):
                self._item_texts(item)
        return [*out, self._frame(data)]

    async def _push(self, key: str, text: str, final: bool) -> str:
        for text_filter in self.filters:
            text = await text_filter.push(key, text, final)
        if text:
            self._texts[key] = self._texts.get(key, "") + text
        return text

    def _item_texts(self, item: Json) -> None:
        for index, part in enumerate(dicts(item.get("content"))):
            _set_text(part, self._texts.get(f"{item.get('id')}:{index}"))

    def _frame(self, data: Json) -> bytes:
        data["sequence_number"] = self.sequence
        self.sequence += 1
        return frame(data, str(data.get("type") or "message"))

    def error_event(self, error: GatewayError) -> bytes:
        return error_events(error, self.response, self.sequence)


def _key(data: Json) -> str:
    return f"{data.get('item_id')}:{data.get('content_index', 0)}"


def _where(data: Json) -> Json:
    return {k: data[k] for k in ("item_id", "output_index", "content_index") if k in data}


def _set_text(part: Json, text: str | None) -> None:
    if text is not None and part.get("type") == "output_text":
        part["text"] = text
        part["logprobs"] = []


class ResponsesWire(WireSupport):
    name = OPENAI_RESPONSES
    forward_headers = FORWARD_HEADERS
    answer_key: str | None = "output"
    continuable = False
    """A translated continuation has other ids and numbering: such routes stream translated."""

    def view(self, call: Call) -> ResponsesRequestView:
        added = getattr(call, "added", None)
        return ResponsesRequestView(call, added)

    def usage(self, body: Any) -> Usage | None:
        return usage_of(body.get("usage")) if isinstance(body, dict) else None

    def response_view(self, body: dict[str, Any]) -> OutputView:
        return OutputView(body)

    def answered(self, ctx: RequestContext, body: Any) -> None:
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            remember_kept(ctx, body["id"])

    def native_stream(
        self, ctx: RequestContext, filters: list[TextFilter], strip_usage: bool
    ) -> ResponsesStream:
        return ResponsesStream(ctx, filters)
