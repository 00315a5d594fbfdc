"""Microbenchmark of the stream translators' hot loops: events per second on one core.

    python benchmarks/translators.py [--events 2000] [--rounds 5] [--json]

For each pair it builds one stream of `--events` text events in the source wire format and
times a fresh translator over it, in pieces of 4 KiB as they would arrive, best of
`--rounds`:

    anthropic -> hub     Anthropic SSE events to canonical chunks (provider decoder)
    gemini -> hub        Gemini `alt=sse` events to chunks
    bedrock -> hub       ConverseStream eventstream frames to chunks
    responses -> hub     OpenAI Responses events to chunks (a backend with `api: responses`)
    hub -> anthropic     chunks to Anthropic events (the ingress encoder)
    hub -> gemini        chunks to Gemini events
    hub -> responses     chunks to Responses events
    hub -> openai        chunks to OpenAI chat SSE (orjson), and with the standard library's json

The goal is at least 50,000 events/s per core for each translated pair. It reports what it
measured and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson

from modelway.plugins.ingress.anthropic.stream import AnthropicStreamEncoder
from modelway.plugins.ingress.gemini.stream import GeminiStreamEncoder
from modelway.plugins.ingress.responses.stream import ResponsesStreamEncoder
from modelway.plugins.providers.anthropic.stream import AnthropicStreamDecoder
from modelway.plugins.providers.bedrock.stream import BedrockStreamDecoder, ConverseStreamTranslator
from modelway.plugins.providers.gemini.response import ResponseMeta
from modelway.plugins.providers.gemini.stream import GeminiStreamDecoder
from modelway.plugins.providers.responses.stream import ResponsesStreamDecoder

GOAL = 50_000
PIECE = 4096


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def anthropic_stream(count: int) -> bytes:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": message})
    ]
    events.append(
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
    )
    for n in range(count):
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": f"w{n} "},
                },
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": count},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return sse(events)


def gemini_stream(count: int) -> bytes:
    events: list[tuple[str | None, Any]] = []
    for n in range(count):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": f"w{n} "}]}}
        if n == count - 1:
            candidate["finishReason"] = "STOP"
        events.append(
            (
                None,
                {
                    "candidates": [candidate],
                    "responseId": "r",
                    "modelVersion": "m",
                    "usageMetadata": {"promptTokenCount": 5},
                },
            )
        )
    return sse(events)


def _header(name: str, value: str) -> bytes:
    raw = name.encode()
    return bytes([len(raw)]) + raw + bytes([7]) + struct.pack(">H", len(value)) + value.encode()


def _frame(event_type: str, payload: dict[str, Any]) -> bytes:
    head = b"".join(
        _header(k, v)
        for k, v in (
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        )
    )
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(head) + len(body) + 4, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + body
    return message + struct.pack(">I", zlib.crc32(message))


def bedrock_stream(count: int) -> bytes:
    frames = [_frame("messageStart", {"role": "assistant"})]
    frames += [
        _frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"w{n} "}})
        for n in range(count)
    ]
    frames.append(_frame("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(_frame("messageStop", {"stopReason": "end_turn"}))
    frames.append(_frame("metadata", {"usage": {"inputTokens": 5, "outputTokens": count}}))
    return b"".join(frames)


def responses_stream(count: int) -> bytes:
    response = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "response": response})
    ]
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    events.append(
        (
            "response.output_item.added",
            {"type": "response.output_item.added", "output_index": 0, "item": item},
        )
    )
    for n in range(count):
        events.append(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": f"w{n} ",
                },
            )
        )
    done = {
        **response,
        "status": "completed",
        "usage": {"input_tokens": 5, "output_tokens": count, "total_tokens": count + 5},
    }
    events.append(("response.completed", {"type": "response.completed", "response": done}))
    return sse(events)


def hub_chunks(count: int) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
    ]
    chunks += [
        {**base, "choices": [{"index": 0, "delta": {"content": f"w{n} "}, "finish_reason": None}]}
        for n in range(count)
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": count + 5}
    chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def decode_run(make: Callable[[], Any], data: bytes) -> Callable[[], int]:
    def run() -> int:
        decoder = make()
        produced = 0
        for start in range(0, len(data), PIECE):
            produced += len(decoder.feed(data[start : start + PIECE]))
        produced += len(decoder.close())
        return produced

    return run


def encode_run(make: Callable[[], Any], chunks: list[dict[str, Any]]) -> Callable[[], int]:
    def run() -> int:
        encoder = make()
        out = [encoder.encode(chunk) for chunk in chunks]
        out.append(encoder.end())
        return len(out)

    return run


def openai_run(dumps: Callable[[Any], bytes], chunks: list[dict[str, Any]]) -> Callable[[], int]:
    def run() -> int:
        out = [b"data: " + dumps(chunk) + b"\n\n" for chunk in chunks]
        parsed = [orjson.loads(line[6:]) for line in out]
        return len(parsed)

    return run


def pairs(count: int) -> dict[str, Callable[[], int]]:
    chunks = hub_chunks(count)
    request = {"model": "m", "input": "hi", "stream": True}
    return {
        "anthropic -> hub": decode_run(lambda: AnthropicStreamDecoder(1), anthropic_stream(count)),
        "gemini -> hub": decode_run(
            lambda: GeminiStreamDecoder(ResponseMeta("id", "m", 1)), gemini_stream(count)
        ),
        "bedrock -> hub": decode_run(
            lambda: BedrockStreamDecoder(ConverseStreamTranslator("id", "m", 1)),
            bedrock_stream(count),
        ),
        "responses -> hub": decode_run(ResponsesStreamDecoder, responses_stream(count)),
        "hub -> anthropic": encode_run(lambda: AnthropicStreamEncoder("msg_1", "m"), chunks),
        "hub -> gemini": encode_run(lambda: GeminiStreamEncoder("m"), chunks),
        "hub -> responses": encode_run(
            lambda: ResponsesStreamEncoder(request, "resp_1", 1), chunks
        ),
        "hub -> openai (orjson)": openai_run(orjson.dumps, chunks),
        "hub -> openai (json)": openai_run(
            lambda c: json.dumps(c, separators=(",", ":")).encode(), chunks
        ),
    }


def measure(run: Callable[[], int], events: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return events / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = {
        name: measure(run, args.events, args.rounds) for name, run in pairs(args.events).items()
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, rate in results.items():
        mark = "" if "openai" in name else ("  goal met" if rate >= GOAL else "  below goal")
        print(f"{name:<24}{rate:>12,.0f} events/s{mark}")
    ratio = results["hub -> openai (orjson)"] / results["hub -> openai (json)"]
    print(f"orjson / json (encode and parse a chunk): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
