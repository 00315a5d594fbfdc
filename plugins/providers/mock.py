"""The `mock` provider: a deterministic, in-process OpenAI-compatible model for trying the
gateway with no API key, and for tests.

It speaks OpenAI's wire format through an in-process transport (so the real OpenAI decoding
path runs), streams in paced chunks, reports usage, and says it is a mock in `model`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.canonical import UpstreamRequest
from modelway.config import BackendConfig
from modelway.extension import ProviderSpec
from modelway.plugins.providers.openai import OpenAIProvider
from modelway.providerkit import dumps
from modelway.wire import OPENAI_CHAT, OPENAI_EMBEDDINGS


class MockOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply: str | None = None
    """A fixed reply; by default the mock answers with a line about the last user message."""
    latency_ms: float = Field(0, ge=0)
    """Delay before the answer (or the stream's first chunk)."""
    chunk_delay_ms: float = Field(20, ge=0)
    """Delay between streamed chunks."""
    words_per_chunk: int = Field(1, ge=1)
    embedding_dimensions: int = Field(8, ge=1, le=4096)


class MockResponse:
    """An in-process answer behind the `UpstreamResponse` protocol."""

    def __init__(self, body: bytes, chunks: list[bytes] | None, delay: float) -> None:
        self.status = 200
        stream = chunks is not None
        self.headers = {"content-type": "text/event-stream" if stream else "application/json"}
        self._body = body
        self._chunks = chunks or []
        self._delay = delay

    async def read(self) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self._chunks):
            if index and self._delay:
                await asyncio.sleep(self._delay)
            yield chunk

    def release(self) -> None:
        pass


class MockTransport:
    def __init__(self, options: MockOptions) -> None:
        self.options = options

    async def send(self, request: UpstreamRequest, *, stream: bool) -> MockResponse:
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000)
        body = json.loads(request.body)
        if request.url.endswith("/embeddings"):
            return MockResponse(dumps(embeddings(body, self.options)), None, 0)
        if stream:
            return MockResponse(
                b"", chat_stream(body, self.options), self.options.chunk_delay_ms / 1000
            )
        return MockResponse(dumps(chat_completion(body, self.options)), None, 0)


class MockProvider(OpenAIProvider):
    """OpenAI translation, in-process transport."""

    native = frozenset({OPENAI_CHAT, OPENAI_EMBEDDINGS})

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        mock_options = options if isinstance(options, MockOptions) else MockOptions()
        super().__init__(backend.model_copy(update={"base_url": "mock://local/v1"}), None)
        self.transport = MockTransport(mock_options)


def reply_text(body: dict[str, Any], options: MockOptions) -> str:
    if options.reply is not None:
        return options.reply
    last = next((m for m in reversed(body.get("messages", [])) if m.get("role") == "user"), None)
    text = _text(last.get("content")) if last else ""
    words = text.split()
    preview = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
    return f"This is a mock reply from modelway. You said: {preview}"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text.split())) if text else 0


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(_tokens(_text(m.get("content"))) + 3 for m in body.get("messages", []))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _ident(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return "chatcmpl-mock" + digest[:20]


def chat_completion(body: dict[str, Any], options: MockOptions) -> dict[str, Any]:
    text = reply_text(body, options)
    return {
        "id": _ident(body),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "mock/" + body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(_prompt_tokens(body), _tokens(text)),
    }


def chat_stream(body: dict[str, Any], options: MockOptions) -> list[bytes]:
    text = reply_text(body, options)
    words = text.split(" ")
    size = options.words_per_chunk
    pieces = [
        " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
        for i in range(0, len(words), size)
    ]
    base = {
        "id": _ident(body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "mock/" + body["model"],
    }
    usage_on = (body.get("stream_options") or {}).get("include_usage") is True
    extra = {"usage": None} if usage_on else {}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
    events = [
        {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}], **extra}
        for d in deltas
    ]
    events.append(
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra}
    )
    if usage_on:
        events.append({**base, "choices": [], "usage": _usage(_prompt_tokens(body), _tokens(text))})
    return [b"data: " + dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def embeddings(body: dict[str, Any], options: MockOptions) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    if inputs and isinstance(inputs[0], int):
        inputs = [inputs]
    dims = body.get("dimensions") or options.embedding_dimensions
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = _vector(json.dumps(item), dims)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_tokens(i) if isinstance(i, str) else len(i) for i in inputs)
    return {
        "object": "list",
        "data": data,
        "model": "mock/" + body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _vector(seed: str, dims: int) -> list[float]:
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vector = out[:dims]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vector]


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            "mock",
            MockProvider,
            MockOptions,
            "a deterministic in-process model for trying the gateway and for tests",
        )
    ]
