"""Load benchmark: modelway against plain mitmdump, both in front of the same fast upstream.

    python benchmarks/load.py [--seconds N] [--concurrency C] [--rounds R] [--json]

One run measures non-streamed chat completions (POST /v1/chat/completions) four ways:

    direct              the load generator talks to the upstream itself (the baseline)
    mitmdump            plain `mitmdump --mode reverse:http://127.0.0.1:UPSTREAM`
    modelway            `modelway run` with an openai backend at the upstream, no access log
    modelway+accesslog  the same with the access log written to a file

and prints requests/s, mean/p50/p99 latency, the latency each proxy adds over the direct
path, and the ratio of modelway's throughput to mitmdump's (the goal is at least 0.8).
Measurements alternate between the targets for `--rounds` rounds, so that drift of the
machine affects them all alike. It reports numbers measured in this run; it asserts nothing.

The upstream and the load generator are separate processes started from this file (hidden
subcommands `_upstream` and `_client`), so none of them shares a GIL with another. The
executables `mitmdump` and `modelway` are the ones next to the running Python interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchkit import (
    HOST,
    Server,
    cpu_snapshot,
    cpu_usage,
    executable,
    free_port,
    percentile,
)

CHAT_PATH = "/v1/chat/completions"
GOAL = 0.8
NOISY_OTHER_PERCENT = 15.0
MODEL = "gpt-bench"

REQUEST_BODY = json.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}]},
    separators=(",", ":"),
).encode()
REQUEST_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-client"}

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19},
}


# ------------------------------------------------------------------------------- upstream


def _http_response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


class UpstreamProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive server: a fixed chat.completion for POST CHAT_PATH.

    It parses just enough (request line, content-length or chunked body, connection: close)
    to be correct for the clients used here, and nothing more, so that it stays far faster
    than the proxies under test.
    """

    OK = _http_response("200 OK", json.dumps(COMPLETION, separators=(",", ":")).encode())
    NOT_FOUND = _http_response("404 Not Found", b'{"error":{"message":"not found"}}')

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            if not self._answer_one():
                return

    def _answer_one(self) -> bool:
        """Answer the first complete request in the buffer; False if there is none yet."""
        assert self.transport is not None
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target, _, version = rest.partition(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if "chunked" in headers.get("transfer-encoding", ""):
            consumed = _chunked_end(buffer, end + 4)
            if consumed is None:
                return False
        else:
            consumed = end + 4 + int(headers.get("content-length") or 0)
            if len(buffer) < consumed:
                return False
        del buffer[:consumed]
        path = target.split("?", 1)[0]
        ok = method == "POST" and path == CHAT_PATH
        self.transport.write(self.OK if ok else self.NOT_FOUND)
        if headers.get("connection") == "close" or version == "HTTP/1.0":
            self.transport.close()
        return True


def _chunked_end(buffer: bytearray, start: int) -> int | None:
    """The index just past a complete chunked body starting at `start`, or None."""
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        if size == 0:
            # The last chunk, optional trailer lines, then an empty line.
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            return None if trailer_end < 0 else trailer_end + 4
        position = line_end + 2 + size + 2
        if len(buffer) < position:
            return None


async def _serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, HOST, port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------------------- client


async def _load(
    url: str,
    concurrency: int,
    warmup: float,
    seconds: float,
    timeout: float,
    pids: dict[str, int],
) -> dict[str, Any]:
    """Keep `concurrency` requests in flight; record those that finish in the window."""
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency, ttl_dns_cache=None)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    clock = time.perf_counter
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        measure_from = clock() + warmup
        stop = measure_from + seconds

        async def worker() -> None:
            while True:
                started = clock()
                if started >= stop:
                    return
                try:
                    async with session.post(url, data=REQUEST_BODY, headers=REQUEST_HEADERS) as r:
                        await r.read()
                        outcome = None if r.status == 200 else f"HTTP {r.status}"
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    outcome = type(exc).__name__
                finished = clock()
                if started < measure_from or finished > stop:
                    continue
                if outcome is None:
                    latencies.append(finished - started)
                else:
                    errors[outcome] = errors.get(outcome, 0) + 1

        async def watch() -> dict[str, float | None]:
            await asyncio.sleep(max(0.0, measure_from - clock()))
            before = cpu_snapshot(pids)
            await asyncio.sleep(max(0.0, stop - clock()))
            return cpu_usage(before, cpu_snapshot(pids))

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = await watcher
    return {
        "seconds": seconds,
        "latencies_ms": [round(x * 1000, 4) for x in latencies],
        "errors": errors,
        "cpu": cpu,
    }


def _gateway_config(upstream_port: int, access_log: Path | None) -> str:
    log = f"{{path: '{access_log}'}}" if access_log else "{enabled: false}"
    return (
        "gateway: {host: 127.0.0.1}\n"
        f"plugins: {{openai: null, access_log: {log}}}\n"
        "backends:\n"
        f"  up: {{provider: openai, base_url: 'http://{HOST}:{upstream_port}/v1', "
        "api_key: sk-bench}\n"
        "routes:\n"
        "  - {match: {model: '*'}, backend: up}\n"
    )


def _check_answers(name: str, port: int) -> None:
    """One request by hand, so that a broken setup fails with a clear message."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("POST", CHAT_PATH, REQUEST_BODY, REQUEST_HEADERS)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200 or b'"chat.completion"' not in body:
        raise RuntimeError(f"{name} answered HTTP {response.status}: {body[:300]!r}")


# ------------------------------------------------------------------------------- measuring


@dataclass
class Phase:
    """All samples of one target at one concurrency, over all rounds."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    round_rps: list[float] = field(default_factory=list)
    cpu: dict[str, float | None] = field(default_factory=dict)
    round_other: list[float | None] = field(default_factory=list)

    def add(self, sample: dict[str, Any]) -> None:
        self.latencies_ms.extend(sample["latencies_ms"])
        for kind, count in sample["errors"].items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        self.seconds += sample["seconds"]
        self.round_rps.append(len(sample["latencies_ms"]) / sample["seconds"])
        other, wall = sample["cpu"].get("other"), sample["cpu"].get("wall")
        self.round_other.append(_percent(other, wall))
        for name, used in sample["cpu"].items():
            self.cpu[name] = _add(self.cpu.get(name, 0.0), used)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        count = len(ordered)
        proxy_cpu = self.cpu.get("proxy")
        return {
            "requests": count,
            "rps": count / self.seconds if self.seconds else 0.0,
            "round_rps": [round(r, 1) for r in self.round_rps],
            "requests_per_proxy_cpu_second": count / proxy_cpu if proxy_cpu else None,
            "mean_ms": sum(ordered) / count if count else None,
            "p50_ms": percentile(ordered, 50),
            "p99_ms": percentile(ordered, 99),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "cpu_percent": {
                name: _percent(self.cpu.get(name), self.cpu.get("wall"))
                for name in ("proxy", "upstream", "client", "other")
            },
            "round_other_cpu_percent": self.round_other,
        }


def _add(total: float | None, more: float | None) -> float | None:
    return None if total is None or more is None else total + more


def _percent(cpu: float | None, wall: float | None) -> float | None:
    """CPU time as a percentage of one core over the measured wall time."""
    return None if cpu is None or not wall else round(100 * cpu / wall, 1)


@dataclass
class Target:
    key: str
    label: str
    port: int
    proxy: Server | None
    load: Phase = field(default_factory=Phase)
    serial: Phase = field(default_factory=Phase)


def _measure(
    target: Target,
    upstream: Server,
    phase: Phase,
    concurrency: int,
    warmup: float,
    seconds: float,
    timeout: float,
) -> None:
    """One measurement by a fresh load-generator process; its samples go to `phase`."""
    pids = {"upstream": upstream.pid}
    if target.proxy is not None:
        pids["proxy"] = target.proxy.pid
    command = [
        sys.executable, os.path.abspath(__file__), "_client",
        "--url", f"http://{HOST}:{target.port}{CHAT_PATH}",
        "--concurrency", str(concurrency),
        "--warmup", str(warmup),
        "--seconds", str(seconds),
        "--timeout", str(timeout),
        "--pids", json.dumps(pids),
    ]  # fmt: skip
    budget = warmup + seconds + timeout + 60
    done = subprocess.run(command, capture_output=True, timeout=budget, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr.decode(errors='replace')}")
    phase.add(json.loads(done.stdout))


def benchmark(args: argparse.Namespace, log: IO[str]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="modelway-load-"))
    servers: list[Server] = []
    try:
        upstream = Server(
            "upstream",
            [sys.executable, os.path.abspath(__file__), "_upstream"],
            workdir / "upstream.log",
        )
        upstream.start(stdout=subprocess.PIPE)
        servers.append(upstream)
        assert upstream.process is not None and upstream.process.stdout is not None
        line = upstream.process.stdout.readline()
        if not line.strip():
            raise RuntimeError("the upstream did not start:\n" + upstream.log_tail())
        upstream.port = int(line)
        upstream.wait_ready()

        access_log = workdir / "access.log"
        mitm_port, plain_port, logged_port = free_port(), free_port(), free_port()
        plain_config = workdir / "modelway.yaml"
        plain_config.write_text(_gateway_config(upstream.port, None))
        logged_config = workdir / "modelway-accesslog.yaml"
        logged_config.write_text(_gateway_config(upstream.port, access_log))
        modelway = executable("modelway")
        proxies = {
            "mitmdump": Server(
                "mitmdump",
                [
                    executable("mitmdump"),
                    "--mode", f"reverse:http://{HOST}:{upstream.port}",
                    "--listen-host", HOST, "-p", str(mitm_port), "-q",
                ],
                workdir / "mitmdump.log",
                mitm_port,
            ),
            "modelway": Server(
                "modelway",
                [modelway, "run", "-c", str(plain_config), "--host", HOST,
                 "--port", str(plain_port)],
                workdir / "modelway.log",
                plain_port,
            ),
            "modelway_accesslog": Server(
                "modelway+accesslog",
                [modelway, "run", "-c", str(logged_config), "--host", HOST,
                 "--port", str(logged_port)],
                workdir / "modelway-accesslog.log",
                logged_port,
            ),
        }  # fmt: skip
        for server in proxies.values():
            server.start()
            servers.append(server)
        for server in proxies.values():
            server.wait_ready()

        targets = [Target("direct", "direct (no proxy)", upstream.port, None)]
        targets += [Target(key, s.name, s.port, s) for key, s in proxies.items()]
        for target in targets:
            _check_answers(target.label, target.port)

        for round_no in range(args.rounds):
            order = targets if round_no % 2 == 0 else targets[::-1]
            for target in order:
                print(
                    f"round {round_no + 1}/{args.rounds}: {target.label} "
                    f"(concurrency {args.concurrency}, {args.seconds:g}s)",
                    file=log,
                    flush=True,
                )
                _measure(target, upstream, target.load, args.concurrency, args.warmup,
                         args.seconds, args.timeout)  # fmt: skip
                if args.latency_seconds > 0:
                    _measure(target, upstream, target.serial, 1, min(args.warmup, 0.5),
                             args.latency_seconds, args.timeout)  # fmt: skip

        access_lines = 0
        if access_log.exists():
            with access_log.open("rb") as lines:
                access_lines = sum(1 for _ in lines)
        return _report(args, targets, access_lines)
    finally:
        for server in reversed(servers):
            server.stop()
        if args.keep:
            print(f"logs and configs kept in {workdir}", file=log)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _report(args: argparse.Namespace, targets: list[Target], access_lines: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for target in targets:
        entry = {"label": target.label, "load": target.load.summary()}
        if args.latency_seconds > 0:
            entry["serial"] = target.serial.summary()
        results[target.key] = entry
    for phase in ("load", "serial"):
        base = results["direct"].get(phase, {}).get("mean_ms")
        for entry in results.values():
            if phase in entry:
                mean = entry[phase]["mean_ms"]
                added = mean - base if mean is not None and base is not None else None
                entry[phase]["added_ms"] = added

    def ratio(key: str, measure: str = "rps") -> float | None:
        mitm = results["mitmdump"]["load"][measure]
        mine = results[key]["load"][measure]
        return mine / mitm if mitm and mine is not None else None

    mitm_rounds = results["mitmdump"]["load"]["round_rps"]
    round_ratios = [
        round(mine / mitm, 3) if mitm else None
        for mine, mitm in zip(results["modelway"]["load"]["round_rps"], mitm_rounds, strict=True)
    ]
    others = [
        value
        for entry in results.values()
        for phase in ("load", "serial")
        if phase in entry
        for value in entry[phase]["round_other_cpu_percent"]
        if value is not None
    ]
    modelway_ratio = ratio("modelway")
    return {
        "python": sys.version.split()[0],
        "mitmproxy": _mitmproxy_version(),
        "modelway_revision": _modelway_revision(),
        "cpus": os.cpu_count(),
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "latency_seconds": args.latency_seconds,
        "results": results,
        "ratio": modelway_ratio,
        "round_ratios": round_ratios,
        "cpu_efficiency_ratio": ratio("modelway", "requests_per_proxy_cpu_second"),
        "ratio_accesslog": ratio("modelway_accesslog"),
        "max_other_cpu_percent": max(others, default=None),
        "goal": GOAL,
        "goal_met": modelway_ratio is not None and modelway_ratio >= GOAL,
        "access_log_lines": access_lines,
    }


def _modelway_revision() -> str | None:
    """The git commit of the checkout this file is in, marked when its code has changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "core", "plugins", "addons"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if changed else "")


def _mitmproxy_version() -> str | None:
    try:
        from mitmproxy.version import VERSION
    except ImportError:
        return None
    return str(VERSION)


# ------------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(report: dict[str, Any]) -> str:
    results = report["results"]
    out = [
        f"modelway load benchmark: modelway {report['modelway_revision'] or '(no git)'}, "
        f"Python {report['python']}, mitmproxy {report['mitmproxy']}",
        f"{report['cpus']} CPUs, shared by the load generator, the proxy and the upstream",
        f"non-streamed POST {CHAT_PATH}; {report['rounds']} round(s) of {report['seconds']:g}s "
        f"per target after {report['warmup']:g}s warm-up, alternating targets",
        "",
        f"Throughput at concurrency {report['concurrency']}:",
    ]
    header = (
        f"{'target':<20} {'req/s':>8} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'added ms':>8} {'errors':>6} {'proxy%':>6} {'req/cpu-s':>9} {'upstr%':>6} "
        f"{'client%':>7} {'other%':>6}  req/s by round"
    )
    out += [header, "-" * len(header)]
    for entry in results.values():
        s = entry["load"]
        cpu = s["cpu_percent"]
        out.append(
            f"{entry['label']:<20} {s['rps']:>8.0f} {_fmt(s['mean_ms']):>8} "
            f"{_fmt(s['p50_ms']):>8} {_fmt(s['p99_ms']):>8} {_fmt(s['added_ms']):>8} "
            f"{s['errors']:>6} {_fmt(cpu['proxy'], 0):>6} "
            f"{_fmt(s['requests_per_proxy_cpu_second'], 0):>9} {_fmt(cpu['upstream'], 0):>6} "
            f"{_fmt(cpu['client'], 0):>7} {_fmt(cpu['other'], 0):>6}"
            f"  {', '.join(f'{r:.0f}' for r in s['round_rps'])}"
        )
    if report["latency_seconds"] > 0:
        out += ["", "Latency at concurrency 1 (one request at a time):"]
        header = f"{'target':<20} {'req/s':>8} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} "
        header += f"{'added ms':>8} {'errors':>6}"
        out += [header, "-" * len(header)]
        for entry in results.values():
            s = entry["serial"]
            out.append(
                f"{entry['label']:<20} {s['rps']:>8.0f} {_fmt(s['mean_ms']):>8} "
                f"{_fmt(s['p50_ms']):>8} {_fmt(s['p99_ms']):>8} {_fmt(s['added_ms']):>8} "
                f"{s['errors']:>6}"
            )
    errors = {e["label"]: e["load"]["error_kinds"] for e in results.values() if e["load"]["errors"]}
    if errors:
        out += ["", f"errors (non-200 or failed requests): {errors}"]
    ratio, logged = report["ratio"], report["ratio_accesslog"]
    verdict = "met" if report["goal_met"] else "not met"
    rounds = ", ".join(_fmt(r, 3) for r in report["round_ratios"])
    out += [
        "",
        "added ms: mean latency minus the direct path's mean latency, in the same phase",
        "proxy%/upstr%/client%: CPU use of each process in % of one core while measured;",
        "req/cpu-s: requests per CPU-second of the proxy; other%: the rest of the machine",
        "",
        f"modelway / mitmdump throughput:            {_fmt(ratio, 3)}  "
        f"(goal >= {report['goal']}: {verdict}; by round: {rounds})",
        f"modelway / mitmdump req per proxy CPU-s:   "
        f"{_fmt(report['cpu_efficiency_ratio'], 3)}  (less sensitive to other load)",
        f"modelway+accesslog / mitmdump throughput:  {_fmt(logged, 3)}  "
        f"({report['access_log_lines']} access-log lines written)",
    ]
    busiest = report["max_other_cpu_percent"]
    if busiest is not None and busiest > NOISY_OTHER_PERCENT:
        out.append(
            f"warning: other processes used up to {busiest:.0f}% of a core during a "
            "measurement; the numbers are noisy, rerun on a quiet machine or with more --rounds"
        )
    return "\n".join(out)


# ------------------------------------------------------------------------------- main


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text}")
        return value

    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Throughput and added latency of modelway vs plain mitmdump (reverse mode)."
    )
    parser.add_argument(
        "--seconds",
        type=_positive(float),
        default=8.0,
        help="measured seconds per target and round (default 8)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive(int),
        default=16,
        help="concurrent keep-alive connections of the load generator (default 16)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive(int),
        default=2,
        help="rounds over all targets, in alternating order (default 2)",
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative,
        default=1.0,
        help="unmeasured seconds before each measurement (default 1)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=_non_negative,
        default=2.0,
        help="seconds of one-at-a-time requests per target and round, for the "
        "unloaded added latency; 0 skips that phase (default 2)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=10.0,
        help="per-request timeout in seconds (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory with configs and server logs",
    )
    return parser  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_upstream"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_upstream(int(argv[1]) if len(argv) > 1 else 0))
        return 0
    if argv[:1] == ["_client"]:
        client = argparse.ArgumentParser(prog="load.py _client")
        client.add_argument("--url", required=True)
        client.add_argument("--concurrency", type=int, required=True)
        client.add_argument("--warmup", type=float, required=True)
        client.add_argument("--seconds", type=float, required=True)
        client.add_argument("--timeout", type=float, required=True)
        client.add_argument("--pids", type=json.loads, default={})
        a = client.parse_args(argv[1:])
        result = asyncio.run(_load(a.url, a.concurrency, a.warmup, a.seconds, a.timeout, a.pids))
        json.dump(result, sys.stdout)
        return 0
    args = _parser().parse_args(argv)
    try:
        report = benchmark(args, sys.stderr)
    except RuntimeError as exc:
        print(f"load.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("load.py: interrupted; all servers stopped", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


def wrk_chat(port: int, seconds: float, concurrency: int, workdir: Path) -> dict[str, Any]:
    """One wrk run of chat completions (load.py's request) at `port`: req/s and non-2xx."""
    script = workdir / "post.lua"
    body = REQUEST_BODY.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["content-type"] = "application/json"\n'
        f'wrk.headers["authorization"] = "{REQUEST_HEADERS["authorization"]}"\n'
    )
    done = subprocess.run(
        ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{seconds:g}s", "-s", str(script),
         f"http://{HOST}:{port}{CHAT_PATH}"],
        capture_output=True, text=True, timeout=seconds + 60, check=False,
    )  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    return {"rps": float(rate.group(1)) if rate else 0.0,
            "errors": int(errors.group(1)) if errors else 0}


if __name__ == "__main__":
    raise SystemExit(main())
