"""Same-API stream scanners: whatever way the upstream's bytes are split, the client gets the
same bytes, and the gateway reads the same usage, end and errors (property tests)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelway.nativestream import BlockScanner, event_json
from modelway.plugins.ingress.anthropic.native import MessagesStream
from modelway.plugins.ingress.gemini.errors import error_object as gemini_error
from modelway.plugins.ingress.gemini.native import GenerateStream
from modelway.plugins.ingress.openai.native import ChatStream, decode_batch


def sse(*events: Any, named: bool = False) -> bytes:
    out = b""
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        head = f"event: {event['type']}\n" if named and isinstance(event, dict) else ""
        out += f"{head}data: {data}\n\n".encode()
    return out


def chunk(content: str | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice], **extra}


USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
OPENAI = sse(
    chunk("", usage=None),
    chunk("Hello", usage=None),
    chunk(' "usage": {not a field} ', usage=None),
    chunk(None, "stop", usage=None),
    {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": USAGE},
    "[DONE]",
)
ANTHROPIC = sse(
    {"type": "message_start", "message": {"usage": {"input_tokens": 5, "cache_read_input_tokens": 2,
                                                    "cache_creation_input_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}},
    {"type": "message_stop"},
    named=True,
)
GEMINI = sse(
    {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]},
    {"candidates": [{"content": {"parts": [{"text": "!"}], "role": "model"},
                     "finishReason": "STOP"}],
     "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 2, "totalTokenCount": 8}},
)


def run(stream: Any, data: bytes, cuts: list[int]) -> bytes:
    async def go() -> bytes:
        out = b""
        points = [0, *sorted(set(c % (len(data) + 1) for c in cuts)), len(data)]
        for start, end in itertools.pairwise(points):
            out += await stream.feed(data[start:end])
        return out + await stream.close()

    return asyncio.run(go())


cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@settings(max_examples=150, deadline=None)
@given(cut_points)
def test_openai_stream_passes_unchanged_and_is_read_at_any_split(cuts):
    stream = ChatStream([], strip_usage=False, track_text=False)
    assert run(stream, OPENAI, cuts) == OPENAI
    assert stream.complete and stream.error is None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (7, 3)


@settings(max_examples=150, deadline=None)
@given(cut_points)
def test_openai_usage_the_client_did_not_ask_for_is_removed_at_any_split(cuts):
    stream = ChatStream([], strip_usage=True, track_text=False)
    out = run(stream, OPENAI, cuts)
    events = [e for e in out.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert [c.get("choices") for c in chunks if not c.get("choices")] == []
    assert all("usage" not in c for c in chunks)
    assert chunks[2]["choices"][0]["delta"]["content"] == ' "usage": {not a field} '
    assert stream.usage is not None and stream.usage.total_tokens == 10


@settings(max_examples=150, deadline=None)
@given(cut_points)
def test_anthropic_stream_passes_unchanged_and_is_read_at_any_split(cuts):
    stream = MessagesStream([])
    assert run(stream, ANTHROPIC, cuts) == ANTHROPIC
    assert stream.complete and stream.error is None
    usage = stream.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (8, 2, 1)
    assert usage.completion_tokens == 4


@settings(max_examples=150, deadline=None)
@given(cut_points)
def test_gemini_stream_passes_unchanged_and_is_read_at_any_split(cuts):
    stream = GenerateStream([], gemini_error)
    assert run(stream, GEMINI, cuts) == GEMINI
    assert stream.complete and stream.usage is not None and stream.usage.prompt_tokens == 6


def test_a_stream_cut_before_its_end_is_truncated_once():
    stream = ChatStream([], strip_usage=False, track_text=False)
    run(stream, OPENAI[: OPENAI.index(b"data: [DONE]") - 200], [])
    assert stream.error is not None and stream.error.code == "upstream_stream_truncated"


def test_an_error_event_is_read_and_marked_forwarded():
    data = sse(chunk("Hi", usage=None), {"error": {"message": "overloaded", "code": "busy"}})
    stream = ChatStream([], strip_usage=False, track_text=False)
    assert run(stream, data, [5]) == data
    assert stream.error is not None and stream.error.code == "busy"
    assert stream.error_forwarded


def test_the_block_scanner_finds_each_marked_event_once():
    scanner = BlockScanner((b"MARK",))
    first, hits = scanner.feed(b"data: a\n\ndata: MARK 1\n\ndata: MA")
    assert first == b"data: a\n\ndata: MARK 1\n\n" and hits == [b"data: MARK 1"]
    block, hits = scanner.feed(b"RK 2\n\ndata: tail")
    assert block == b"data: MARK 2\n\n" and hits == [b"data: MARK 2"]
    assert scanner.close() == (b"data: tail", [])


class Upper:
    """A text filter that holds nothing: every piece comes out upper-cased at once."""

    async def push(self, channel: str, text: str, final: bool) -> str:
        return text.upper()


def texts(out: bytes) -> tuple[str, list[str]]:
    events = [e for e in out.decode().split("\n\n") if e]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]
    content = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    return content, events


@settings(max_examples=150, deadline=None)
@given(cut_points)
def test_a_filtered_openai_stream_decodes_each_batch_at_once_at_any_split(cuts):
    stream = ChatStream([Upper()], strip_usage=True, track_text=False)
    content, events = texts(run(stream, OPENAI, cuts))
    assert content == 'HELLO "USAGE": {NOT A FIELD} '
    assert events[-1] == "data: [DONE]"
    assert stream.complete and stream.error is None and stream.usage.total_tokens == 10


def test_a_filtered_stream_with_an_event_that_is_not_json_fails_after_the_text_before_it():
    data = sse(chunk("Hi", usage=None), chunk(" there", usage=None)) + b"data: {oops\n\n"
    data += sse(chunk(" never", usage=None), "[DONE]")
    stream = ChatStream([Upper()], strip_usage=False, track_text=False)
    out = run(stream, data, [])
    assert stream.error is not None and stream.error.code == "upstream_invalid_stream"
    content, _ = texts(out.split(b"data: {oops")[0])
    assert content == "HI THERE" and out.endswith(b"data: {oops\n\n")


def test_events_with_names_and_lines_of_data_are_decoded_in_one_batch_as_alone():
    events = [b'event: x\ndata: {"a":\ndata: 1}', b"data: [DONE]", b'data: {"b": 2}', b"data: 3"]
    assert decode_batch(events) == [{"a": 1}, None, {"b": 2}, 3]
    events.insert(1, b": a comment only")
    assert decode_batch(events) == [event_json(e) for e in events]
