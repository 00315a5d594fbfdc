"""Streaming benchmark: SSE chat streams through modelway and plain mitmdump, side by side.

    python benchmarks/stream.py [--events 200] [--seconds 6] [--concurrency 8]
                                [--paced-streams 200] [--baseline-venv DIR] [--json]
                                [--only direct,mitmdump,modelway,...] [--rounds 2]

One upstream process answers OpenAI chat streams (`POST /v1/chat/completions`) and Anthropic
message streams (`POST /v1/messages`) of `--events` events, either at once ("burst") or one
event every `--pace-ms` ("paced"). The targets, measured in one run:

    direct              the client talks to the upstream itself
    mitmdump            plain `mitmdump --mode reverse` with streaming on
    modelway            OpenAI client, OpenAI backend: the same-API lane, no policy
    modelway-translated OpenAI client, Anthropic backend (every event translated)
    modelway-pii        the same-API lane with the PII guard masking the stream
    modelway-uvloop     the same-API lane with `gateway.event_loop: uvloop`
    modelway-before     (with --baseline-venv) another modelway install, e.g. the last release

Phases: burst streams at `--concurrency` (streams/s, events/s, CPU per event of the proxy),
the first event at concurrency 1 (p50/p99 added over direct), and `--paced-streams`
concurrent paced streams (the p99 gap between events, against mitmdump's). Each phase runs
every target in turn, `--rounds` times in alternating order, pooled. It prints ratios
measured in this run and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import HOST, Server, cpu_snapshot, cpu_usage, executable, free_port, percentile

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
MODELWAYS = (
    "modelway",
    "modelway-uvloop",
    "modelway-translated",
    "modelway-pii",
    "modelway-before",
)
REQUEST = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
ANTHROPIC_MODELWAYS = (
    "modelway",
    "modelway-uvloop",
    "modelway-translated",
    "modelway-pii",
    "modelway-before",
)
REQUEST = {**REQUEST, "max_tokens": 1000}


# --------------------------------------------------------------------------- the upstream


def openai_events(count: int) -> list[bytes]:
    base = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": "bench"}
    out = []
    for index in range(count):
        delta = {"role": "assistant", "content": ""} if index == 0 else {"content": f"w{index} "}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        out.append({**base, "choices": [choice]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": count + 5}
    out.append({**base, "choices": [], "usage": usage})
    return [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in out] + [
        b"data: [DONE]\n\n"
    ]


def anthropic_events(count: int) -> list[bytes]:
    message = {
        "id": "msg_b",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    events: list[tuple[str, Any]] = [
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
    for index in range(1, count):
        delta = {"type": "text_delta", "text": f"w{index} "}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": count},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


class Upstream(asyncio.Protocol):
    """Answers every request with a chunked SSE stream (keep-alive)."""

    def __init__(self, events: dict[str, list[bytes]], pace: float) -> None:
        self.events = events
        self.pace = pace
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length :]
            path = head.split(" ", 2)[1]
            kind = "anthropic" if path.startswith(MESSAGES) else "openai"
            asyncio.get_running_loop().create_task(self.answer(self.events[kind]))

    async def answer(self, events: list[bytes]) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for event in events:
            self.transport.write(b"%x\r\n%b\r\n" % (len(event), event))
            if self.pace:
                await asyncio.sleep(self.pace)
        self.transport.write(b"0\r\n\r\n")


async def serve_upstream(port: int, count: int, pace_ms: float) -> None:
    events = {"openai": openai_events(count), "anthropic": anthropic_events(count)}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(events, pace_ms / 1000), HOST, port)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------- the client


async def run_streams(
    url: str, body: dict[str, Any], concurrency: int, seconds: float, pids: dict[str, int]
) -> dict[str, Any]:
    """Keep `concurrency` streams going for `seconds`; per stream: first-event latency,
    event count, the gaps between events."""
    import aiohttp

    firsts: list[float] = []
    gaps: list[float] = []
    events = streams = errors = 0
    clock = time.perf_counter
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop = clock() + seconds
        before = cpu_snapshot(pids)

        async def worker() -> None:
            nonlocal events, streams, errors
            while clock() < stop:
                started = clock()
                try:
                    async with session.post(url, data=data, headers=headers) as answer:
                        last, count = None, 0
                        async for chunk in answer.content.iter_any():
                            now = clock()
                            found = chunk.count(b"\n\n")
                            if found and last is None:
                                firsts.append(now - started)
                            elif found and last is not None:
                                gaps.append(now - last)
                            if found:
                                last = now
                            count += found
                        if answer.status != 200:
                            errors += 1
                            continue
                except (aiohttp.ClientError, OSError):
                    errors += 1
                    continue
                events += count
                streams += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        used = cpu_usage(before, cpu_snapshot(pids))
    return {
        "firsts": firsts,
        "gaps": gaps,
        "events": events,
        "streams": streams,
        "errors": errors,
        "cpu": used,
    }


# --------------------------------------------------------------------------- the targets


def gateway_config(directory: Path, name: str, upstream: int) -> Path:
    backend = {"provider": "openai", "base_url": f"http://{HOST}:{upstream}/v1", "api_key": "sk-up"}
    plugins = "plugins: {openai: null, access_log: {enabled: false}}"
    policies = ""
    if name == "modelway-translated":
        backend = {
            "provider": "anthropic",
            "base_url": f"http://{HOST}:{upstream}",
            "api_key": "sk-up",
        }
        plugins = "plugins: {anthropic: null, access_log: {enabled: false}}"
    if name == "modelway-pii":
        plugins = "plugins: {openai: null, pii_guard: {workers: 1}, access_log: {enabled: false}}"
        policies = ", policies: {pii_guard: {response: {entities: [EMAIL_ADDRESS, PHONE_NUMBER]}}}"
    if name == "modelway-uvloop":
        plugins = "gateway: {event_loop: uvloop}\n" + plugins
    path = directory / f"{name}.yaml"
    path.write_text(
        f"{plugins}\nbackends: {{up: {json.dumps(backend)}}}\n"
        f"routes: [{{match: {{model: '*'}}, backend: up{policies}}}]\n"
    )
    return path


def targets(args: argparse.Namespace, directory: Path, upstream: int) -> list[Server]:
    out = [
        Server(
            "mitmdump",
            [
                executable("mitmdump"),
                "--mode",
                f"reverse:http://{HOST}:{upstream}",
                "--set",
                "stream_large_bodies=1",
                "-q",
                "-p",
                "{port}",
            ],
            directory / "mitmdump.log",
        )
    ]
    names = ["modelway", "modelway-uvloop", "modelway-translated", "modelway-pii"]
    for name in names:
        config = gateway_config(directory, name, upstream)
        command = [executable("modelway"), "run", "-c", str(config), "--port", "{port}"]
        out.append(Server(name, command, directory / f"{name}.log"))
    if args.baseline_venv:
        config = gateway_config(directory, "modelway", upstream)
        binary = str(Path(args.baseline_venv) / "bin" / "modelway")
        out.append(
            Server(
                "modelway-before",
                [binary, "run", "-c", str(config), "--port", "{port}"],
                directory / "before.log",
            )
        )
    if args.only:
        wanted = set(args.only.split(","))
        out = [server for server in out if server.name in wanted]
    for server in out:
        server.port = free_port()
        server.command = [part.replace("{port}", str(server.port)) for part in server.command]
    return out


def measure(
    url: str, body: dict[str, Any], concurrency: int, seconds: float, pids: dict[str, int]
) -> dict[str, Any]:
    return asyncio.run(run_streams(url, body, concurrency, seconds, pids))


def summary(result: dict[str, Any], seconds: float, proxy: str | None) -> dict[str, Any]:
    firsts = sorted(result["firsts"])
    gaps = sorted(result["gaps"])
    cpu = result["cpu"].get(proxy) if proxy else None
    return {
        "streams_per_s": result["streams"] / seconds,
        "events_per_s": result["events"] / seconds,
        "first_p50_ms": _ms(percentile(firsts, 50)),
        "first_p99_ms": _ms(percentile(firsts, 99)),
        "gap_p99_ms": _ms(percentile(gaps, 99)),
        "cpu_us_per_event": (cpu / result["events"] * 1e6) if cpu and result["events"] else None,
        "errors": result["errors"],
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="mw-stream-"))
    results: dict[str, dict[str, Any]] = {}
    for mode, pace in (("burst", 0.0), ("paced", args.pace_ms)):
        upstream_port = free_port()
        upstream = Server(
            "upstream",
            [
                sys.executable,
                __file__,
                "_upstream",
                str(upstream_port),
                str(args.events),
                str(pace),
            ],
            directory / "upstream.log",
            port=upstream_port,
        )
        servers = [upstream, *targets(args, directory, upstream_port)]
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_ready()
            results[mode] = run_mode(args, mode, servers)
        finally:
            for server in servers:
                server.stop()
    return {"events": args.events, "pace_ms": args.pace_ms, "results": results}


def run_mode(args: argparse.Namespace, mode: str, servers: list[Server]) -> dict[str, Any]:
    """Every target in turn, `--rounds` times in alternating order (drift of a shared
    machine then touches all alike); each phase's results pooled over the rounds."""
    upstream, proxies = servers[0], servers[1:]
    everyone: list[tuple[str, int, int | None]] = [("direct", upstream.port, None)]
    everyone += [(s.name, s.port, s.pid) for s in proxies]
    if args.only and "direct" not in args.only.split(","):
        everyone = everyone[1:]
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name, _, _ in everyone}
    for round_index in range(args.rounds):
        order = everyone if round_index % 2 == 0 else everyone[::-1]
        for name, port, pid in order:
            url = f"http://{HOST}:{port}{CHAT}"
            pids = {"proxy": pid} if pid else {}
            pids["upstream"] = upstream.pid
            if round_index == 0:
                measure(url, REQUEST, 2, 1.0, pids)  # warm-up: connections, caches
            phases = raw[name]
            if mode == "burst":
                loaded = measure(url, REQUEST, args.concurrency, args.seconds, pids)
                single = measure(url, REQUEST, 1, args.seconds / 2, pids)
                phases.setdefault("loaded", []).append(loaded)
                phases.setdefault("single", []).append(single)
            else:
                paced = measure(url, REQUEST, args.paced_streams, args.seconds, pids)
                phases.setdefault("paced", []).append(paced)
    out: dict[str, Any] = {}
    for name, _, pid in everyone:
        out[name] = {}
        for phase, results in raw[name].items():
            seconds = (args.seconds / 2 if phase == "single" else args.seconds) * len(results)
            proxy = "proxy" if pid and phase != "single" else None
            out[name][phase] = summary(pooled(results), seconds, proxy)
    return out


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several measurements of one phase as one: samples joined, counts and CPU summed."""
    cpu: dict[str, float | None] = {}
    for result in results:
        for key, value in result["cpu"].items():
            before = cpu.get(key, 0.0)
            cpu[key] = None if value is None or before is None else before + value
    return {
        "firsts": [x for r in results for x in r["firsts"]],
        "gaps": [x for r in results for x in r["gaps"]],
        "events": sum(r["events"] for r in results),
        "streams": sum(r["streams"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "cpu": cpu,
    }


# --------------------------------------------------------------------------- report


def render(report: dict[str, Any]) -> str:
    lines = [f"streams of {report['events']} events; paced: {report['pace_ms']} ms apart"]
    burst = report["results"].get("burst", {})
    direct = burst.get("direct", {}).get("single", {})
    lines.append(
        f"{'burst':<22}{'streams/s':>10}{'events/s':>11}{'µs CPU/ev':>10}"
        f"{'1st p50 +ms':>12}{'1st p99 +ms':>12}"
    )
    for name, data in burst.items():
        loaded, single = data["loaded"], data["single"]
        lines.append(
            f"{name:<22}{loaded['streams_per_s']:>10.1f}{loaded['events_per_s']:>11.0f}"
            f"{_fmt(loaded['cpu_us_per_event']):>10}"
            f"{_fmt(_minus(single['first_p50_ms'], direct.get('first_p50_ms'))):>12}"
            f"{_fmt(_minus(single['first_p99_ms'], direct.get('first_p99_ms'))):>12}"
        )
    mitm = burst.get("mitmdump", {}).get("loaded", {}).get("streams_per_s")
    for name in MODELWAYS:
        if name in burst and mitm:
            ratio = burst[name]["loaded"]["streams_per_s"] / mitm
            lines.append(f"{name} / mitmdump streams/s: {ratio:.2f}")
    paced = report["results"].get("paced", {})
    if paced:
        lines.append(f"{'paced':<22}{'gap p99 ms':>12}{'µs CPU/ev':>10}")
        for name, data in paced.items():
            lines.append(
                f"{name:<22}{_fmt(data['paced']['gap_p99_ms']):>12}"
                f"{_fmt(data['paced']['cpu_us_per_event']):>10}"
            )
        base = paced.get("mitmdump", {}).get("paced", {}).get("gap_p99_ms")
        for name in MODELWAYS:
            gap = paced.get(name, {}).get("paced", {}).get("gap_p99_ms")
            if base and gap:
                lines.append(f"{name} / mitmdump paced gap p99: {gap / base:.2f}")
    return "\n".join(lines)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per target")
    p.add_argument("--paced-streams", type=int, default=200)
    p.add_argument("--pace-ms", type=float, default=20.0)
    p.add_argument("--baseline-venv", help="a venv with another modelway (modelway-before)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--only", help="comma-separated targets to measure (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_upstream":
        asyncio.run(serve_upstream(int(argv[1]), int(argv[2]), float(argv[3])))
        return 0
    args = parser().parse_args(argv)
    report = benchmark(args)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
