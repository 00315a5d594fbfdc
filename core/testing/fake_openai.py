"""OpenAI's wire format for fake upstreams: chat completions (streamed or not) and embeddings.

Bodies follow the OpenAI API reference: `chat.completion` objects, `chat.completion.chunk`
events in `data:` lines ended by `data: [DONE]`, a usage chunk (empty `choices`) only when
the request asked for it with `stream_options.include_usage`, and embeddings as float lists
or, with `encoding_format: base64`, little-endian float32 bytes in base64.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Any

from modelway.testing.upstreams import Received, Reply

CREATED = 1700000000
PROMPT_TOKENS = 7


def chat_reply_text(request: dict[str, Any]) -> str:
    """The echo answer: `echo: <last message's text>`."""
    last = request["messages"][-1].get("content")
    return f"echo: {last}" if isinstance(last, str) else "echo"


def default_usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }


def openai_completion(
    request: dict[str, Any], text: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    """A `chat.completion` answering `text` (default: the echo)."""
    text = chat_reply_text(request) if text is None else text
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": CREATED,
        "model": request["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage or default_usage(len(text.split())),
    }


def chunk_events(
    request: dict[str, Any], pieces: list[str], usage: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` events that stream `pieces` (verbatim), then the finish,
    then a usage chunk when the request asked for one."""
    usage_on = (request.get("stream_options") or {}).get("include_usage") is True
    base = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": request["model"],
    }
    extra = {"usage": None} if usage_on else {}
    events = []
    for index, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        events.append({**base, "choices": [choice], **extra})
    stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
    events.append({**base, "choices": [stop], **extra})
    if usage_on:
        events.append({**base, "choices": [], "usage": usage or default_usage(len(pieces))})
    return events


def sse_chunks(events: list[dict[str, Any]]) -> list[bytes]:
    """Events as OpenAI sends them: one `data:` line each, then `data: [DONE]`."""
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def words(text: str) -> list[str]:
    """`text` cut into stream pieces at spaces (each later piece keeps its leading space)."""
    parts = text.split(" ")
    return [parts[0]] + [" " + p for p in parts[1:]]


def openai_stream_chunks(request: dict[str, Any], pieces: list[str] | None = None) -> list[bytes]:
    """The SSE bytes of a streamed answer: `pieces` (words joined by spaces) or the echo."""
    text_pieces = words(chat_reply_text(request)) if pieces is None else words(" ".join(pieces))
    return sse_chunks(chunk_events(request, text_pieces))


def float_vector(index: int, dims: int) -> list[float]:
    """Values exactly representable in float32, so base64 round trips compare equal."""
    return [(index + 1) * 0.5 + k * 0.25 for k in range(dims)]


def embeddings_body(
    request: dict[str, Any], vector: Callable[[int], list[float]], honour_base64: bool = True
) -> dict[str, Any]:
    inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
    as_base64 = honour_base64 and request.get("encoding_format") == "base64"
    data = []
    for index, _ in enumerate(inputs):
        values = vector(index)
        packed = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        embedding: Any = packed if as_base64 else values
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}
    return {"object": "list", "data": data, "model": request["model"], "usage": usage}


def openai_behavior(received: Received) -> Reply:
    """A well-behaved OpenAI server: the echo (streamed or not); embeddings [0.1, 0.2, 0.3]
    as floats whatever `encoding_format` says (a lenient OpenAI-compatible server); a GET
    lists one model (`/v1/models`) or nothing (any other list)."""
    if received.method == "GET":
        path = received.path.split("?")[0]
        if path.endswith("/models"):
            model = {"id": "gpt-upstream", "object": "model", "created": 0, "owned_by": "up"}
            return Reply.json({"object": "list", "data": [model]})
        return Reply.json({"object": "list", "data": [], "has_more": False})
    request = received.json
    if received.path.endswith("/embeddings"):
        body = embeddings_body(request, lambda _: [0.1, 0.2, 0.3], honour_base64=False)
        body["usage"] = {"prompt_tokens": 2, "total_tokens": 2}
        return Reply.json(body)
    if request.get("stream"):
        return Reply.sse(openai_stream_chunks(request))
    return Reply.json(openai_completion(request))


class OpenAIChat:
    """A scriptable OpenAI server (a behavior).

    Chat answers `pieces` (verbatim, joined when not streamed; default: the echo cut into
    words) with `usage`; streamed chunks are `delay` seconds apart. Embeddings have `dims`
    values each and honour `encoding_format` as the real API does. Set `reply` to a function
    of the request body returning a Reply (or None) to script one answer.
    """

    def __init__(
        self,
        pieces: list[str] | None = None,
        usage: dict[str, int] | None = None,
        delay: float = 0.0,
        dims: int = 5,
    ) -> None:
        self.pieces = pieces
        self.usage = usage
        self.delay = delay
        self.dims = dims
        self.reply: Callable[[dict[str, Any]], Reply | None] | None = None

    def __call__(self, received: Received) -> Reply:
        request = received.json
        scripted = self.reply(request) if self.reply else None
        if scripted is not None:
            return scripted
        if received.path.endswith("/embeddings"):
            return Reply.json(embeddings_body(request, lambda i: float_vector(i, self.dims)))
        pieces = self.pieces if self.pieces is not None else words(chat_reply_text(request))
        if request.get("stream"):
            events = chunk_events(request, pieces, self.usage)
            return Reply.sse(sse_chunks(events), delay=self.delay)
        return Reply.json(openai_completion(request, "".join(pieces), self.usage))
