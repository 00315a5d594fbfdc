"""The policy views of the `openai.responses` wire: a create body, and a `response`.

The request view reads every text of a create body: `instructions`, the input (a string, or
message items with their text parts), function and custom tool calls' arguments, and tool
outputs. It adds messages as input items (a prepended system message is a leading `system`
message item, which every lane carries as the first instruction) and maps the portable
settings (`max_tokens` is `max_output_tokens`; the API has no `stop`, `seed` or `top_k`,
which are left out). The response view lists the answer's `output_text` parts.
"""

from __future__ import annotations

from typing import Any

from modelway.viewkit import SettingsView, dicts, json_string_segments, text_segments
from modelway.wire import Call, Segment

Json = dict[str, Any]
_SYSTEM_ROLES = ("system", "developer")
_TEXT_PARTS = ("input_text", "output_text")
_OUTPUTS = ("function_call_output", "custom_tool_call_output")


class ResponsesRequestView(SettingsView):
    """A `POST /v1/responses` body."""

    paths = {"max_tokens": ("max_output_tokens",), "stop": (), "seed": (), "top_k": ()}

    def __init__(self, call: Call, added: list[Json] | None = None) -> None:
        super().__init__(call)
        self._prepended = 0
        self.added = added if added is not None else []
        """The items this view added (they are the gateway's, not the client's input)."""

    def get(self, name: str) -> Any:
        return None if self._path(name) == () else super().get(name)

    def set(self, name: str, value: Any) -> None:
        if self._path(name) != ():  # a setting the Responses API has no field for
            super().set(name, value)

    def remove(self, name: str) -> bool:
        return self._path(name) != () and super().remove(name)

    def segments(self) -> list[Segment]:
        out = text_segments(self.body, "instructions", "system", "system", self.edited)
        if isinstance(self.body.get("input"), str):
            out.extend(text_segments(self.body, "input", "user", "text", self.edited))
        for item in dicts(self.body.get("input")):
            out.extend(self._item(item))
        return out

    def _item(self, item: Json) -> list[Segment]:
        kind = item.get("type", "message")
        if kind == "message":
            role = str(item.get("role", "user"))
            text_kind = "system" if role in _SYSTEM_ROLES else "text"
            return text_segments(item, "content", role, text_kind, self.edited, _TEXT_PARTS)
        if kind == "function_call":
            return json_string_segments(
                item, "arguments", "assistant", "tool_arguments", self.edited
            )
        if kind == "custom_tool_call":
            return text_segments(item, "input", "assistant", "tool_arguments", self.edited)
        if kind in _OUTPUTS:
            return text_segments(item, "output", "tool", "tool_result", self.edited, _TEXT_PARTS)
        return []

    def prepend(self, role: str, text: str) -> None:
        self._items().insert(self._prepended, self._new(role, text))
        self._prepended += 1
        self.edited()

    def append(self, role: str, text: str) -> None:
        self._items().append(self._new(role, text))
        self.edited()

    def _new(self, role: str, text: str) -> Json:
        item = {"type": "message", "role": role, "content": text}
        self.added.append(item)
        return item

    def _items(self) -> list[Any]:
        items = self.body.get("input")
        if isinstance(items, str):
            items = [{"type": "message", "role": "user", "content": items}]
        elif not isinstance(items, list):
            items = []
        self.body["input"] = items
        return items


class OutputView:
    """A complete `response` object: the text parts of its message items."""

    def __init__(self, body: Json) -> None:
        self.body = body
        self.edited = False

    def _edited(self) -> None:
        self.edited = True

    def _parts(self) -> list[Json]:
        return [
            part
            for item in dicts(self.body.get("output"))
            if item.get("type") == "message"
            for part in dicts(item.get("content"))
            if part.get("type") == "output_text"
        ]

    def segments(self) -> list[Segment]:
        return [
            s
            for part in self._parts()
            for s in text_segments(part, "text", "assistant", "text", self._edited)
        ]

    def drop_logprobs(self) -> None:
        for part in self._parts():
            if part.get("logprobs"):
                part["logprobs"] = []
                self.edited = True
