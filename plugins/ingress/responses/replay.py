"""A stored response as the event stream that would have produced it (`GET ...?stream=true`).

The events are the ones a live stream sends, in the same order: `response.created` and
`response.in_progress`, then per output item `output_item.added`, its parts (a message's
text parts with one delta each, a reasoning item's summary parts, a function call's
arguments), `output_item.done`, and the final `response.completed` (or `.incomplete`,
`.failed`). `starting_after` leaves out the events up to that sequence number, as the API
does for a client that reconnects.
"""

from __future__ import annotations

import copy
from typing import Any

from modelway.nativestream import frame

Json = dict[str, Any]
_FINAL = {"completed": "response.completed", "incomplete": "response.incomplete",
          "failed": "response.failed"}


class _Events:
    def __init__(self) -> None:
        self.events: list[Json] = []

    def add(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, "sequence_number": len(self.events), **fields})


def replay(response: Json, starting_after: int | None = None) -> bytes:
    """SSE bytes for a stored response."""
    out = _Events()
    started = {**copy.deepcopy(response), "status": "in_progress", "output": [], "usage": None}
    for kind in ("response.created", "response.in_progress"):
        out.add(kind, response=started)
    for index, item in enumerate(response.get("output") or ()):
        if isinstance(item, dict):
            _item(out, index, item)
    final = _FINAL.get(str(response.get("status")), "response.completed")
    out.add(final, response=response)
    skip = -1 if starting_after is None else starting_after
    return b"".join(frame(e, e["type"]) for e in out.events if e["sequence_number"] > skip)


def _item(out: _Events, index: int, item: Json) -> None:
    kind = item.get("type")
    where = {"item_id": item.get("id"), "output_index": index}
    if kind == "message":
        out.add("response.output_item.added", output_index=index,
                item={**item, "status": "in_progress", "content": []})
        for part_index, part in enumerate(item.get("content") or ()):
            _message_part(out, {**where, "content_index": part_index}, part)
    elif kind == "reasoning":
        out.add("response.output_item.added", output_index=index,
                item={**item, "summary": [], "encrypted_content": None})
        for summary_index, part in enumerate(item.get("summary") or ()):
            _summary(out, {**where, "summary_index": summary_index}, str(part.get("text", "")))
    elif kind == "function_call":
        out.add("response.output_item.added", output_index=index,
                item={**item, "status": "in_progress", "arguments": ""})
        arguments = str(item.get("arguments") or "")
        out.add("response.function_call_arguments.delta", **where, delta=arguments)
        out.add("response.function_call_arguments.done", **where, name=item.get("name"),
                arguments=arguments)
    else:
        out.add("response.output_item.added", output_index=index, item=item)
    out.add("response.output_item.done", output_index=index, item=item)


def _message_part(out: _Events, where: Json, part: Json) -> None:
    if part.get("type") == "refusal":
        refusal = str(part.get("refusal") or "")
        out.add("response.content_part.added", **where, part={"type": "refusal", "refusal": ""})
        out.add("response.refusal.delta", **where, delta=refusal)
        out.add("response.refusal.done", **where, refusal=refusal)
    else:
        text = str(part.get("text") or "")
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        out.add("response.content_part.added", **where, part=empty)
        out.add("response.output_text.delta", **where, delta=text, logprobs=[])
        out.add("response.output_text.done", **where, text=text, logprobs=[])
    out.add("response.content_part.done", **where, part=part)


def _summary(out: _Events, where: Json, text: str) -> None:
    out.add("response.reasoning_summary_part.added", **where,
            part={"type": "summary_text", "text": ""})
    out.add("response.reasoning_summary_text.delta", **where, delta=text)
    out.add("response.reasoning_summary_text.done", **where, text=text)
    out.add("response.reasoning_summary_part.done", **where,
            part={"type": "summary_text", "text": text})
