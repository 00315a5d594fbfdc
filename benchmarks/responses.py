"""Responses API over a translated backend against chat completions over the same backend.

    python benchmarks/responses.py                  # 2 rounds x 4 modes x (1 s warm-up + 5 s)
    python benchmarks/responses.py --seconds 3 --rounds 3 --concurrency 16 --json

One gateway (`modelway run`, access log off) in front of one chat-only OpenAI-compatible
upstream (a raw asyncio server in its own process answering fixed bytes, never the
bottleneck). Four modes in one run, measured in alternating order per round: chat
completions and Responses, each whole and streamed (a 24-chunk answer). For each: requests/s
with `--concurrency` closed-loop clients, mean latency, and for streams the time to the
first byte, and the gateway process's CPU time per request (steadier than requests/s on a
shared machine). The result is the ratio Responses / chat for whole and for streamed answers:
the cost of translating the Responses API through the hub (decode, translate, store the
response, encode its events). Nothing here asserts a time; numbers vary with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import asks_stream, take_request
from benchkit import executable as _executable
from benchkit import free_port as _free_port
from benchkit import process_cpu as _process_cpu
from load import HOST, Server, UpstreamProtocol

WORDS = 24
COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "bench", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": " ".join(["word"] * WORDS)}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": WORDS, "total_tokens": 10 + WORDS},
}
MODES = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello"}]}),
    "responses": ("/v1/responses", {"input": "Hello"}),
}


def _stream_body() -> bytes:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
            "model": "bench"}
    chunks = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    chunks += [{**head, "choices": [{"index": 0, "delta": {"content": "word "},
                                     "finish_reason": None}]} for _ in range(WORDS)]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**head, "choices": [], "usage": COMPLETION["usage"]})
    events = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return events + b"data: [DONE]\n\n"


def _reply(content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


class ChatUpstream(UpstreamProtocol):
    """load.py's keep-alive server, answering chat whole or streamed (by the body)."""

    WHOLE = _reply("application/json", json.dumps(COMPLETION).encode())
    STREAM = _reply("text/event-stream", _stream_body())

    def _answer_one(self) -> bool:
        assert self.transport is not None
        body = take_request(self.buffer)
        if body is None:
            return False
        self.transport.write(self.STREAM if asks_stream(body) else self.WHOLE)
        return True


async def _serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(ChatUpstream, HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------------------- client


async def _one(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[float, float]:
    """(latency, time to the first body byte) of one request, in seconds."""
    start = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json",
                                                     "authorization": "Bearer sk"}) as answer:
        first = None
        async for _ in answer.content.iter_any():
            first = first or time.perf_counter()
        if answer.status != 200:
            raise RuntimeError(f"{url} answered {answer.status}")
    end = time.perf_counter()
    return end - start, (first or end) - start


async def measure(url: str, body: bytes, concurrency: int, warmup: float,
                  seconds: float, pid: int) -> dict[str, float]:
    samples: list[tuple[float, float]] = []
    done = [0]
    cpu_before = _process_cpu(pid) or 0.0
    begin = time.perf_counter()
    window = (begin + warmup, begin + warmup + seconds)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < window[1]:
                sent = time.perf_counter()
                latency, first = await _one(session, url, body)
                done[0] += 1
                if sent >= window[0] and sent + latency <= window[1]:
                    samples.append((latency, first))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = (_process_cpu(pid) or 0.0) - cpu_before
    return {
        "cpu_ms": cpu / max(done[0], 1) * 1000,
        "rps": len(samples) / seconds,
        "mean_ms": statistics.fmean(s[0] for s in samples) * 1000,
        "ttfb_ms": statistics.fmean(s[1] for s in samples) * 1000,
        "requests": len(samples),
    }


def _bodies(streamed: bool) -> dict[str, bytes]:
    extra = {"stream": True} if streamed else {}
    return {name: json.dumps({"model": "bench", **body, **extra}).encode()
            for name, (_, body) in MODES.items()}


async def _rounds(
    base: str, args: argparse.Namespace, pid: int
) -> dict[str, list[dict[str, float]]]:
    order = [(api, streamed) for streamed in (False, True) for api in MODES]
    results: dict[str, list[dict[str, float]]] = {}
    for number in range(args.rounds):
        for api, streamed in order if number % 2 == 0 else list(reversed(order)):
            url = base + MODES[api][0]
            body = _bodies(streamed)[api]
            result = await measure(url, body, args.concurrency, args.warmup, args.seconds,
                                   pid)
            results.setdefault(f"{api} {'stream' if streamed else 'whole'}", []).append(result)
    return results


def _config(upstream_port: int) -> str:
    return (
        "gateway: {host: 127.0.0.1}\n"
        "plugins: {openai: null, responses_api: null, access_log: {enabled: false}}\n"
        "backends:\n"
        f"  up: {{provider: openai, base_url: 'http://{HOST}:{upstream_port}/v1', "
        "api_key: sk-bench}\n"
        "routes:\n  - {match: {model: '*'}, backend: up}\n"
    )


def summarize(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    pooled = {
        name: {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    ratios = {
        kind: pooled[f"responses {kind}"]["rps"] / pooled[f"chat {kind}"]["rps"]
        for kind in ("whole", "stream")
    }
    cpu = {
        kind: pooled[f"responses {kind}"]["cpu_ms"] / pooled[f"chat {kind}"]["cpu_ms"]
        for kind in ("whole", "stream")
    }
    return {"modes": pooled, "responses_over_chat": ratios, "cpu_responses_over_chat": cpu,
            "per_round": {name: [round(r["rps"], 1) for r in runs]
                          for name, runs in results.items()}}


def render(report: dict[str, Any]) -> str:
    lines = [f"{'mode':<18}{'req/s':>9}{'mean ms':>10}{'ttfb ms':>10}{'cpu ms/req':>12}"
             "  req/s per round"]
    for name, row in report["modes"].items():
        rounds = ", ".join(str(v) for v in report["per_round"][name])
        lines.append(f"{name:<18}{row['rps']:>9.1f}{row['mean_ms']:>10.2f}"
                     f"{row['ttfb_ms']:>10.2f}{row['cpu_ms']:>12.3f}  {rounds}")
    ratios, cpu = report["responses_over_chat"], report["cpu_responses_over_chat"]
    lines.append(f"Responses / chat throughput: whole {ratios['whole']:.2f}, "
                 f"streamed {ratios['stream']:.2f}")
    lines.append(f"Responses / chat gateway CPU per request: whole {cpu['whole']:.2f}, "
                 f"streamed {cpu['stream']:.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mw-responses-bench-") as work:
        directory = Path(work)
        upstream_port, gateway_port = _free_port(), _free_port()
        upstream = Server("upstream", [sys.executable, __file__, "_upstream",
                                       str(upstream_port)], directory / "upstream.log",
                          upstream_port)
        config = directory / "gateway.yaml"
        config.write_text(_config(upstream_port))
        gateway = Server("modelway", [_executable("modelway"), "run", "-c", str(config),
                                      "--port", str(gateway_port)], directory / "gateway.log",
                         gateway_port)
        try:
            for server in (upstream, gateway):
                server.start()
                server.wait_ready()
            results = asyncio.run(_rounds(f"http://{HOST}:{gateway_port}", args, gateway.pid))
        finally:
            for server in (gateway, upstream):
                server.stop()
    return summarize(results)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_upstream"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_upstream(int(argv[1])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=1) if args.json else render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
