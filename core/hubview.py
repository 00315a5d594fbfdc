"""The policy views of the OpenAI chat-completions shape: the `openai.chat` wire and the hub.

Three views: `ChatRequestView` over a chat (or embeddings) request body, `ChatResponseView`
over a `chat.completion`, and `ChunkTextEditor`, which runs `TextFilter`s over the
`delta.content` of `chat.completion.chunk` dicts (per choice, flushing held text right before
the choice's finish chunk). The canonical form is this shape, so translated answers use these
views whatever the client's API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelway.viewkit import (
    SettingsView,
    dicts,
    json_string_segments,
    text_segments,
    writer,
)
from modelway.wire import Call, Segment, TextFilter

_ROLE_KINDS = {"system": "system", "developer": "system", "tool": "tool_result"}


class ChatRequestView(SettingsView):
    """An OpenAI chat-completions (or embeddings) body. Settings are its own field names."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._prepended = 0

    def segments(self) -> list[Segment]:
        out: list[Segment] = []
        for message in dicts(self.body.get("messages")):
            role = str(message.get("role", "user"))
            kind = _ROLE_KINDS.get(role, "text")
            out.extend(text_segments(message, "content", role, kind, self.edited))
            for call in dicts(message.get("tool_calls")):
                function = call.get("function")
                if isinstance(function, dict):
                    out.extend(
                        json_string_segments(
                            function, "arguments", role, "tool_arguments", self.edited
                        )
                    )
        out.extend(self._inputs())
        return out

    def _inputs(self) -> list[Segment]:
        inputs = self.body.get("input")
        if isinstance(inputs, str):
            return text_segments(self.body, "input", "user", "input", self.edited)
        if not isinstance(inputs, list):
            return []
        return [
            Segment("user", "input", item, writer(inputs, index, self.edited))
            for index, item in enumerate(inputs)
            if isinstance(item, str)
        ]

    def prepend(self, role: str, text: str) -> None:
        messages = self._messages()
        messages.insert(self._prepended, {"role": role, "content": text})
        self._prepended += 1
        self.edited()

    def append(self, role: str, text: str) -> None:
        self._messages().append({"role": role, "content": text})
        self.edited()

    def _messages(self) -> list[Any]:
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            messages = self.body["messages"] = []
        return messages


class ChatResponseView:
    """A `chat.completion`: each choice's `message.content`."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.edited = False

    def _edited(self) -> None:
        self.edited = True

    def segments(self) -> list[Segment]:
        out: list[Segment] = []
        for choice in dicts(self.body.get("choices")):
            message = choice.get("message")
            if isinstance(message, dict):
                out.extend(text_segments(message, "content", "assistant", "text", self._edited))
        return out

    def drop_logprobs(self) -> None:
        for choice in dicts(self.body.get("choices")):
            if choice.get("logprobs") is not None:
                choice["logprobs"] = None
                self.edited = True


async def chain_push(filters: Sequence[TextFilter], channel: str, text: str, final: bool) -> str:
    """`text` through every filter in order; with `final`, everything held is flushed."""
    for text_filter in filters:
        text = await text_filter.push(channel, text, final)
    return text


class ChunkTextEditor:
    """Runs text filters over canonical chunks: `delta.content` per choice index."""

    def __init__(self, filters: Sequence[TextFilter]) -> None:
        self.filters = list(filters)
        self._open: set[int] = set()
        self._last: dict[str, Any] | None = None

    async def edit(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks to send for `chunk` (held text may come out later)."""
        choices = chunk.get("choices")
        self._last = chunk
        if not isinstance(choices, list) or not choices:
            return [chunk]
        before: list[dict[str, Any]] = []
        kept = []
        for choice in choices:
            edited = (
                await self._choice(chunk, choice, before) if isinstance(choice, dict) else choice
            )
            if edited is not None:
                kept.append(edited)
        if not kept and chunk.get("usage") is None:
            return before
        return [*before, {**chunk, "choices": kept}]

    async def edit_all(self, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The chunks to send for a batch read at once: runs of plain text deltas of one
        choice are merged first, so a filter (a PII analysis) runs once per run, not once per
        token."""
        out: list[dict[str, Any]] = []
        for chunk in merge_text_runs(chunks):
            out.extend(await self.edit(chunk))
        return out

    async def end(self) -> list[dict[str, Any]]:
        """The end of the stream: every choice's held text, in content chunks."""
        out = []
        for index in sorted(self._open):
            text = await chain_push(self.filters, str(index), "", True)
            if text and self._last is not None:
                out.append(content_chunk(self._last, index, text))
        self._open.clear()
        return out

    async def _choice(
        self, chunk: dict[str, Any], choice: dict[str, Any], before: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        done = choice.get("finish_reason") is not None
        if choice.get("logprobs") is not None:
            choice = {**choice, "logprobs": None}  # token logprobs would repeat the raw text
        if isinstance(delta, dict) and isinstance(content, str):
            self._open.add(index)
            text = await chain_push(self.filters, str(index), content, done)
            if done:
                self._open.discard(index)
            if not text and not done and delta.keys() == {"content"} and content:
                return None  # all of it is held: nothing to send for this choice yet
            return {**choice, "delta": {**delta, "content": text}}
        if done and index in self._open:
            self._open.discard(index)
            text = await chain_push(self.filters, str(index), "", True)
            if text:
                before.append(content_chunk(chunk, index, text))
        return choice


def _text_only(chunk: dict[str, Any]) -> tuple[int, str] | None:
    """(choice index, text) of a chunk that carries nothing but one choice's text delta
    (checked in the order that rejects other chunks soonest: this runs once per event)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or chunk.get("usage"):
        return None
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict) or len(delta) != 1:
        return None
    content = delta.get("content")
    if not isinstance(content, str) or choice.get("finish_reason"):
        return None
    if choice.get("logprobs") is not None:
        return None
    index = choice.get("index", 0)
    return (index if isinstance(index, int) else 0), content


def merge_text_runs(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive plain text deltas of the same choice as one chunk (the first's envelope)."""
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    run_index = -1
    for chunk in chunks:
        text = _text_only(chunk)
        if text is not None and run and text[0] == run_index:
            run.append(chunk)
            continue
        _close_run(out, run, run_index)
        run, run_index = ([chunk], text[0]) if text is not None else ([], -1)
        if text is None:
            out.append(chunk)
    _close_run(out, run, run_index)
    return out


def _close_run(out: list[dict[str, Any]], run: list[dict[str, Any]], index: int) -> None:
    if len(run) == 1:
        out.append(run[0])
    elif run:
        text = "".join(c["choices"][0]["delta"]["content"] for c in run)
        out.append(content_chunk(run[0], index, text))


def content_chunk(template: dict[str, Any], index: int, text: str) -> dict[str, Any]:
    """A content-only chunk for choice `index`, in the envelope of `template`."""
    chunk = {k: v for k, v in template.items() if k not in ("choices", "usage")}
    chunk["choices"] = [{"index": index, "delta": {"content": text}, "finish_reason": None}]
    if "usage" in template:
        chunk["usage"] = None
    return chunk
