"""Hub `chat.completion.chunk`s as the Responses API's typed stream events.

`start()` gives `response.created` and `response.in_progress` before the backend answers;
each chunk then opens, fills and closes output items the way the API streams them (one item
open at a time): a reasoning item with its summary parts, the assistant message with its
output_text (and refusal) part, one item per tool call. `end()` closes what is open and
sends `response.completed` (or `response.incomplete`) with the whole response, whose output
is what `to_response` gives for the same answer; `error()` sends `error` and
`response.failed`. Every event carries a `sequence_number` counted from 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelway import jsonx
from modelway.errors import GatewayError
from modelway.nativestream import frame
from modelway.plugins.ingress.responses.response import (
    INCOMPLETE_REASONS,
    as_dict,
    call_item,
    default_call_id,
    failure,
    item_id,
    mark_incomplete,
    message_item,
    output_text,
    reasoning_item,
    response_object,
    responses_usage,
)
from modelway.plugins.ingress.responses.tools import custom_input, tool_names

Json = dict[str, Any]


@dataclass
class _Reasoning:
    index: int
    texts: list[str] = field(default_factory=list)
    blocks: list[Json] = field(default_factory=list)
    open_part: bool = False


@dataclass
class _Message:
    index: int
    parts: list[str] = field(default_factory=list)
    """The kinds of the content parts, in order: "text" or "refusal"."""
    text: str = ""
    refusal: str = ""
    open_part: str | None = None


@dataclass
class _Call:
    index: int
    call_id: str
    name: str
    arguments: str = ""
    closed: bool = False


class ResponsesStreamEncoder:
    """One streamed Responses answer, from hub chunks."""

    content_type = "text/event-stream"

    def __init__(
        self,
        request: Json,
        response_id: str,
        created_at: int,
        history: list[Json] | None = None,
    ) -> None:
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self.names = tool_names(request, history)
        self.output: list[Json] = []
        self.sequence = 0
        self.current: _Reasoning | _Message | _Call | None = None
        self.calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.finished = False
        self.final: Json | None = None
        """The whole response, once `end()` sent it."""
        self._out: list[bytes] = []

    # ---------------------------------------------------------------- the public protocol

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`: send before the upstream answers."""
        for kind in ("response.created", "response.in_progress"):
            self._emit(kind, response=self._response("in_progress"))
        return self._flush()

    def encode(self, chunk: Json) -> bytes:
        if self.finished:
            return b""
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice)
        return self._flush()

    def end(self) -> bytes:
        """Close what is open, then `response.completed` or `response.incomplete`."""
        if self.finished:
            return b""
        self.finished = True
        reason = INCOMPLETE_REASONS.get(str(self.finish_reason))
        if not self.output:
            self._message()  # an empty answer is still one (empty) message
        self._close(incomplete=reason is not None)
        status = "incomplete" if reason else "completed"
        response = self._response(status, responses_usage(self.usage), reason)
        self.final = response
        self._emit(f"response.{status}", response=response)
        return self._flush()

    def error(self, err: GatewayError) -> bytes:
        """An `error` event, then `response.failed` with what was produced so far."""
        if self.finished:
            return b""
        self.finished = True
        self._emit("error", code=err.code, message=err.message, param=err.param)
        if self.current is not None:
            item = self._item(self.current)
            mark_incomplete(item)
            self.output[self.current.index] = item
        response = self._response("failed", responses_usage(self.usage), error=failure(err))
        self._emit("response.failed", response=response)
        return self._flush()

    # ------------------------------------------------------------------------- chunks

    def _choice(self, choice: Json) -> None:
        delta = as_dict(choice.get("delta"))
        if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
            self._reasoning_text(delta["reasoning_content"])
        if isinstance(delta.get("reasoning_signature"), str):
            self._end_block({"type": "thinking", "signature": delta["reasoning_signature"]})
        if isinstance(delta.get("redacted_reasoning"), str):
            self._end_block({"type": "redacted_thinking", "data": delta["redacted_reasoning"]})
        if isinstance(delta.get("content"), str) and delta["content"]:
            self._text("text", delta["content"])
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            self._text("refusal", delta["refusal"])
        for position, call in enumerate(delta.get("tool_calls") or ()):
            if isinstance(call, dict):
                self._tool_delta(position, call)
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    # ---------------------------------------------------------------------- reasoning

    def _reasoning(self) -> _Reasoning:
        if isinstance(self.current, _Reasoning):
            return self.current
        self._close()
        state = _Reasoning(len(self.output))
        self._open(state, reasoning_item(self._id("rs", state.index), [], []))
        return state

    def _reasoning_text(self, text: str) -> None:
        state = self._reasoning()
        where = self._where(state)
        if not state.open_part:
            state.open_part = True
            state.texts.append("")
            part = {"type": "summary_text", "text": ""}
            self._emit("response.reasoning_summary_part.added", **where, part=part,
                       summary_index=len(state.texts) - 1)
        state.texts[-1] += text
        self._emit("response.reasoning_summary_text.delta", **where, delta=text,
                   summary_index=len(state.texts) - 1)

    def _end_block(self, block: Json) -> None:
        """A signature closes the thinking block whose text came before it."""
        state = self._reasoning()
        if block["type"] == "thinking":
            block = {"type": "thinking", "thinking": "", **block}
            if state.open_part:
                block["thinking"] = state.texts[-1]
        self._close_summary(state)
        state.blocks.append(block)

    def _close_summary(self, state: _Reasoning) -> None:
        if not state.open_part:
            return
        state.open_part = False
        where, text = self._where(state), state.texts[-1]
        index = len(state.texts) - 1
        self._emit("response.reasoning_summary_text.done", **where, text=text,
                   summary_index=index)
        self._emit("response.reasoning_summary_part.done", **where, summary_index=index,
                   part={"type": "summary_text", "text": text})

    # ------------------------------------------------------------------------ message

    def _message(self) -> _Message:
        if isinstance(self.current, _Message):
            return self.current
        self._close()
        state = _Message(len(self.output))
        item = message_item(self._id("msg", state.index), "", status="in_progress")
        self._open(state, {**item, "content": []})
        return state

    def _text(self, kind: str, text: str) -> None:
        state = self._message()
        if state.open_part != kind:
            self._close_part(state)
            state.open_part = kind
            state.parts.append(kind)
            self._emit("response.content_part.added", **self._part_where(state),
                       part=_part(kind, ""))
        if kind == "text":
            state.text += text
            self._emit("response.output_text.delta", **self._part_where(state), delta=text,
                       logprobs=[])
        else:
            state.refusal += text
            self._emit("response.refusal.delta", **self._part_where(state), delta=text)

    def _close_part(self, state: _Message) -> None:
        kind, state.open_part = state.open_part, None
        if kind is None:
            return
        where = self._part_where(state)
        if kind == "text":
            self._emit("response.output_text.done", **where, text=state.text, logprobs=[])
        else:
            self._emit("response.refusal.done", **where, refusal=state.refusal)
        text = state.text if kind == "text" else state.refusal
        self._emit("response.content_part.done", **where, part=_part(kind, text))

    def _part_where(self, state: _Message) -> Json:
        return {**self._where(state), "content_index": len(state.parts) - 1}

    # --------------------------------------------------------------------- tool calls

    def _tool_delta(self, position: int, delta: Json) -> None:
        index = delta.get("index", position)
        function = as_dict(delta.get("function"))
        state = self.calls.get(index)
        if state is None:
            state = self._open_call(index, delta, function)
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or not arguments:
            return
        state.arguments += arguments
        if not state.closed and self.names.lookup(state.name).kind == "function":
            self._emit("response.function_call_arguments.delta", **self._where(state),
                       delta=arguments)

    def _open_call(self, index: int, delta: Json, function: Json) -> _Call:
        self._close()
        position = len(self.output)
        call_id = delta.get("id") or default_call_id(self.response_id, position)
        state = _Call(position, str(call_id), str(function.get("name") or ""))
        self.calls[index] = state
        item = self._call_item(state, "in_progress")
        if item["type"] == "custom_tool_call":
            item["input"] = ""
        elif item["type"] == "function_call":
            item["arguments"] = ""
        self._open(state, item)
        return state

    def _close_call(self, state: _Call) -> None:
        state.closed = True
        tool, where = self.names.lookup(state.name), self._where(state)
        if tool.kind == "function":
            self._emit("response.function_call_arguments.done", **where, name=tool.name,
                       arguments=state.arguments)
        elif tool.kind == "custom":
            text = custom_input(state.arguments)
            self._emit("response.custom_tool_call_input.delta", **where, delta=text)
            self._emit("response.custom_tool_call_input.done", **where, input=text)

    def _call_item(self, state: _Call, status: str) -> Json:
        return call_item(self.response_id, state.index, state.call_id, state.name,
                         state.arguments, self.names, status)

    # ------------------------------------------------------------------ items, events

    def _open(self, state: _Reasoning | _Message | _Call, item: Json) -> None:
        self.current = state
        self.output.append(item)
        self._emit("response.output_item.added", output_index=state.index, item=item)

    def _close(self, incomplete: bool = False) -> None:
        """Close the open item (the last one), with all its `.done` events."""
        state, self.current = self.current, None
        if isinstance(state, _Reasoning):
            self._close_summary(state)
        elif isinstance(state, _Message):
            self._close_part(state)
        elif isinstance(state, _Call):
            self._close_call(state)
        if state is not None:
            self._done(state, self._item(state), incomplete)

    def _item(self, state: _Reasoning | _Message | _Call) -> Json:
        """The item as it stands."""
        if isinstance(state, _Reasoning):
            return reasoning_item(self._id("rs", state.index), state.texts, state.blocks)
        if isinstance(state, _Message):
            return message_item(self._id("msg", state.index), state.text, state.refusal or None)
        return self._call_item(state, "completed")

    def _done(self, state: _Reasoning | _Message | _Call, item: Json, incomplete: bool) -> None:
        if incomplete:
            mark_incomplete(item)
        self.output[state.index] = item
        self._emit("response.output_item.done", output_index=state.index, item=item)

    def _where(self, state: _Reasoning | _Message | _Call) -> Json:
        return {"item_id": self.output[state.index]["id"], "output_index": state.index}

    def _id(self, prefix: str, index: int) -> str:
        return item_id(self.response_id, prefix, index)

    def _response(
        self, status: str, usage: Json | None = None, reason: str | None = None,
        error: Json | None = None,
    ) -> Json:
        output = jsonx.loads(jsonx.dumps(self.output))  # a snapshot: items still change
        return response_object(self.request, self.response_id, self.created_at, status=status,
                               output=output, usage=usage, incomplete_reason=reason,
                               error=error)

    def _emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        self._out.append(frame(event, kind))

    def _flush(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out


def _part(kind: str, text: str) -> Json:
    return output_text(text) if kind == "text" else {"type": "refusal", "refusal": text}

