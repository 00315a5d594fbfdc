"""Soak benchmark: many requests, streamed and not, through one `modelway run` process.

    python benchmarks/soak.py [--requests N] [--concurrency C] [--json]

A gateway process (`modelway run`, an `openai` backend, the access log written to a file)
in front of an upstream process (aiohttp: chat completions, whole or streamed as SSE),
loaded by this process with an aiohttp client: every other request streams. The gateway's
RSS and open file descriptors are read from /proc every `--sample-every` requests. After
a warm-up (the first 2% of the requests, at least 500) it prints the growth of RSS and fds
from the end of the warm-up to the end (goal: RSS under 20 MB), the p50/p99 latency of the
first and the last 10% of the requests and the drift of p99 between them (as a ratio), and
the count of answers that were not 200. It reports what this run measured; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchkit import HOST, Server, executable, free_port, percentile

RSS_GOAL_MB = 20.0
MODEL = "gpt-soak"
WORDS = ["Hello", " from", " the", " soak", " upstream", "."]


# ----------------------------------------------------------------------------- upstream


async def _serve_upstream(port: int) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        head = {"id": "chatcmpl-soak", "created": 1, "model": body.get("model", MODEL)}
        usage = {"prompt_tokens": 9, "completion_tokens": len(WORDS), "total_tokens": 15}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(WORDS)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response(
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunk = {**head, "object": "chat.completion.chunk"}
        for index, word in enumerate(WORDS):
            delta = {"content": word, **({"role": "assistant"} if index == 0 else {})}
            event = {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        end = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(b"data: " + json.dumps(end).encode() + b"\n\n")
        tail = {**chunk, "choices": [], "usage": usage}
        await response.write(b"data: " + json.dumps(tail).encode() + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    await asyncio.Event().wait()


# ----------------------------------------------------------------------------- sampling


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ----------------------------------------------------------------------------- load


async def load(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    url = f"http://{HOST}:{port}/v1/chat/completions"
    headers = {"content-type": "application/json", "authorization": "Bearer sk-soak"}
    latencies: list[float] = [0.0] * args.requests
    statuses: dict[str, int] = {}
    samples: list[tuple[int, float, int]] = []
    counter = iter(range(args.requests))
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        for index in counter:
            stream = index % 2 == 1
            body = {
                "model": MODEL,
                "stream": stream,
                "messages": [{"role": "user", "content": f"request {index}"}],
            }
            started = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as response:
                    data = await response.read()
                    ok = response.status == 200 and (not stream or b"[DONE]" in data)
                    key = str(response.status) if ok or response.status != 200 else "200-cut"
            except aiohttp.ClientError as exc:
                key = type(exc).__name__
            latencies[index] = time.perf_counter() - started
            statuses[key] = statuses.get(key, 0) + 1
            done += 1
            if done % args.sample_every == 0:
                samples.append((done, rss_mb(pid), open_fds(pid)))
                if done % (args.sample_every * 10) == 0:
                    print(
                        f"  {done} requests, RSS {samples[-1][1]:.1f} MB, fds {samples[-1][2]}",
                        file=sys.stderr,
                        flush=True,
                    )

    samples.append((0, rss_mb(pid), open_fds(pid)))
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
    seconds = time.perf_counter() - started
    await asyncio.sleep(1.0)  # let the gateway settle before the last sample
    samples.append((done, rss_mb(pid), open_fds(pid)))
    return {"latencies": latencies, "statuses": statuses, "samples": samples, "seconds": seconds}


def summarize(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    latencies = result["latencies"]
    tenth = max(1, len(latencies) // 10)
    first, last = sorted(latencies[:tenth]), sorted(latencies[-tenth:])
    warm = max(500, args.requests // 50)
    samples = result["samples"]
    base = next((s for s in samples if s[0] >= warm), samples[0])
    end = samples[-1]
    p99_first, p99_last = percentile(first, 99), percentile(last, 99)
    return {
        "requests": len(latencies),
        "concurrency": args.concurrency,
        "seconds": round(result["seconds"], 1),
        "requests_per_second": round(len(latencies) / result["seconds"], 1),
        "statuses": dict(sorted(result["statuses"].items())),
        "rss_mb": {
            "start": round(samples[0][1], 1),
            "after_warmup": round(base[1], 1),
            "end": round(end[1], 1),
            "peak": round(max(s[1] for s in samples), 1),
            "growth_after_warmup": round(end[1] - base[1], 1),
        },
        "fds": {
            "start": samples[0][2],
            "after_warmup": base[2],
            "end": end[2],
            "peak": max(s[2] for s in samples),
        },
        "latency_ms": {
            "first_10pct": {"p50": _ms(percentile(first, 50)), "p99": _ms(p99_first)},
            "last_10pct": {"p50": _ms(percentile(last, 50)), "p99": _ms(p99_last)},
            "p99_drift_ratio": round(p99_last / p99_first, 2) if p99_first and p99_last else None,
        },
        "rss_goal_mb": RSS_GOAL_MB,
        "rss_goal_met": end[1] - base[1] < RSS_GOAL_MB,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def render(summary: dict[str, Any]) -> str:
    rss, fds, lat = summary["rss_mb"], summary["fds"], summary["latency_ms"]
    goal = "met" if summary["rss_goal_met"] else "NOT met"
    return "\n".join(
        [
            f"{summary['requests']} requests (half streamed), "
            f"concurrency {summary['concurrency']}, "
            f"{summary['seconds']} s, {summary['requests_per_second']} req/s",
            f"statuses: {summary['statuses']}",
            f"RSS MB: start {rss['start']}, after warm-up {rss['after_warmup']}, end {rss['end']}, "
            f"peak {rss['peak']}; growth after warm-up {rss['growth_after_warmup']} MB "
            f"(goal < {RSS_GOAL_MB:g} MB: {goal})",
            f"open fds: start {fds['start']}, after warm-up {fds['after_warmup']}, "
            f"end {fds['end']}, "
            f"peak {fds['peak']}",
            f"latency ms: first 10% p50 {lat['first_10pct']['p50']} "
            f"p99 {lat['first_10pct']['p99']}; "
            f"last 10% p50 {lat['last_10pct']['p50']} p99 {lat['last_10pct']['p99']}; "
            f"p99 drift (last/first) {lat['p99_drift_ratio']}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if len(sys.argv) == 3 and sys.argv[1] == "_upstream":
        asyncio.run(_serve_upstream(int(sys.argv[2])))
        return 0
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sample-every", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelway-soak-") as tmp:
        directory = Path(tmp)
        up_port, gw_port = free_port(), free_port()
        config = directory / "gateway.yaml"
        config.write_text(
            "gateway: {host: 127.0.0.1}\n"
            f"plugins: {{openai: null, access_log: {{path: '{directory / 'access.log'}'}}}}\n"
            f"backends:\n  up: {{provider: openai, base_url: 'http://{HOST}:{up_port}/v1', "
            "api_key: sk-up}\nroutes:\n  - {match: {model: '*'}, backend: up}\n"
        )
        upstream = Server(
            "upstream",
            [sys.executable, __file__, "_upstream", str(up_port)],
            directory / "upstream.log",
            up_port,
        )
        gateway = Server(
            "modelway",
            [
                executable("modelway"),
                "run",
                "-c",
                str(config),
                "--host",
                HOST,
                "--port",
                str(gw_port),
            ],
            directory / "gateway.log",
            gw_port,
        )
        try:
            for server in (upstream, gateway):
                server.start()
                server.wait_ready()
            result = asyncio.run(load(gw_port, gateway.pid, args))
        finally:
            for server in (gateway, upstream):
                server.stop()
    summary = summarize(result, args)
    print(json.dumps(summary) if args.json else render(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
