"""Observability benchmark: throughput with metrics and tracing on against off, in one run.

    python benchmarks/observe.py [--seconds N] [--concurrency C] [--rounds R] [--json]

Targets, each a `modelway run` with an `openai` backend at load.py's fixed-answer upstream:
`plain` (no observability plugin), `metrics` (the `metrics` plugin; /metrics is scraped
once a second during the load, as a fast Prometheus would), `tracing` (the `tracing` plugin,
every request sampled, exported over OTLP/HTTP to a sink this script runs), `tracing_10pct`
(the same, one trace in ten sampled) and `all`
(metrics, tracing, stats and dashboard). Goals: metrics >= 0.9 and tracing >= 0.8 of plain.
The load generator is `wrk` when installed, else load.py's aiohttp client; targets are
measured in alternating order over the rounds. With wrk it also reads the gateway process's CPU
time per request, which other users' load moves far less than throughput. It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchkit import HOST, Server, executable, free_port, load_main, process_cpu
from load import (
    Phase,
    Target,
    _check_answers,
    _measure,
    wrk_chat,
)

CPU: dict[str, list[float]] = {}
"""Gateway CPU seconds per request, per target and round (wrk runs only)."""
METRICS_GOAL = 0.9
TRACING_GOAL = 0.8
PLUGINS = {
    "plain": "",
    "metrics": "  metrics: null\n",
    "tracing": "  tracing: {{endpoint: 'http://127.0.0.1:{sink}/v1/traces'}}\n",
    "tracing_10pct": "  tracing: {{endpoint: 'http://127.0.0.1:{sink}/v1/traces', "
    "sample_ratio: 0.1}}\n",
    "all": "  metrics: null\n  stats: null\n  dashboard: null\n"
    "  tracing: {{endpoint: 'http://127.0.0.1:{sink}/v1/traces'}}\n",
}


class Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export and keeps only the count."""

    received = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        Sink.received += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()


def _config(upstream: int, key: str, sink: int) -> str:
    return (
        "gateway: {host: 127.0.0.1}\n"
        "plugins:\n  openai: null\n  access_log: {enabled: false}\n"
        + PLUGINS[key].format(sink=sink)
        + "backends:\n"
        f"  up: {{provider: openai, base_url: 'http://{HOST}:{upstream}/v1', api_key: sk, "
        "model: gpt-4o-mini}\n"
        "routes:\n  - {name: chat, match: {model: '*'}, backend: up}\n"
    )


def _measure_one(target: Target, upstream: Server, args: argparse.Namespace, workdir: Path) -> None:
    if shutil.which("wrk"):
        wrk_chat(target.port, min(args.warmup, 1.0) or 0.5, args.concurrency, workdir)  # warm-up
        assert target.proxy is not None
        before = process_cpu(target.proxy.pid)
        result = wrk_chat(target.port, args.seconds, args.concurrency, workdir)
        rps, errors = result["rps"], result["errors"]
        after = process_cpu(target.proxy.pid)
        if before is not None and after is not None and rps:
            CPU.setdefault(target.key, []).append((after - before) / (rps * args.seconds))
        target.load.round_rps.append(rps)
        target.load.errors["non-2xx"] = target.load.errors.get("non-2xx", 0) + errors
    else:
        _measure(target, upstream, target.load, args.concurrency, args.warmup, args.seconds,
                 args.timeout)  # fmt: skip


def _rps(phase: Phase) -> float:
    return sum(phase.round_rps) / len(phase.round_rps) if phase.round_rps else 0.0


def _scraper(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as answer:
                answer.read()
        except OSError:
            pass


def benchmark(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="modelway-observe-"))
    servers: list[Server] = []
    sink = ThreadingHTTPServer((HOST, 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        upstream = Server("upstream", [sys.executable, str(Path(__file__).with_name("load.py")),
                                       "_upstream"], workdir / "upstream.log")  # fmt: skip
        upstream.start(stdout=subprocess.PIPE)
        servers.append(upstream)
        assert upstream.process is not None and upstream.process.stdout is not None
        upstream.port = int(upstream.process.stdout.readline())
        targets = []
        modelway = executable("modelway")
        for key in PLUGINS:
            config = workdir / f"{key}.yaml"
            config.write_text(_config(upstream.port, key, sink.server_address[1]))
            port = free_port()
            server = Server(key, [modelway, "run", "-c", str(config), "--host", HOST,
                                  "--port", str(port)], workdir / f"{key}.log", port)  # fmt: skip
            server.start()
            servers.append(server)
            targets.append(Target(key, key, port, server))
        for target in targets:
            assert target.proxy is not None
            target.proxy.wait_ready(60)
            time.sleep(0.5)
            _check_answers(target.label, target.port)
        for round_no in range(args.rounds):
            for target in targets if round_no % 2 == 0 else targets[::-1]:
                print(f"round {round_no + 1}/{args.rounds}: {target.label}", file=log, flush=True)
                stop = threading.Event()
                scraper = threading.Thread(target=_scraper, args=(target.port, stop))
                if target.key in ("metrics", "all"):
                    scraper.start()
                try:
                    _measure_one(target, upstream, args, workdir)
                finally:
                    stop.set()
                    if scraper.is_alive():
                        scraper.join()
        return _report(targets)
    finally:
        for server in reversed(servers):
            server.stop()
        sink.shutdown()
        sink.server_close()
        shutil.rmtree(workdir, ignore_errors=True)


def _report(targets: list[Target]) -> dict[str, Any]:
    rps = {t.key: _rps(t.load) for t in targets}

    def ratio(key: str) -> float | None:
        return round(rps[key] / rps["plain"], 3) if rps["plain"] else None

    cpu = {k: sum(v) / len(v) * 1e6 for k, v in CPU.items() if v}

    def cpu_ratio(key: str) -> float | None:
        return round(cpu["plain"] / cpu[key], 3) if cpu.get(key) and cpu.get("plain") else None

    return {
        "cpu_us_per_request": {k: round(v, 1) for k, v in cpu.items()},
        "cpu_ratio": {k: cpu_ratio(k) for k in cpu},
        "load_generator": "wrk" if shutil.which("wrk") else "load.py aiohttp client",
        "rps": {k: round(v, 1) for k, v in rps.items()},
        "round_rps": {t.key: [round(r, 1) for r in t.load.round_rps] for t in targets},
        "errors": {t.key: sum(t.load.errors.values()) for t in targets},
        "otlp_exports_received": Sink.received,
        "metrics_vs_plain": ratio("metrics"),
        "tracing_vs_plain": ratio("tracing"),
        "tracing_10pct_vs_plain": ratio("tracing_10pct"),
        "all_vs_plain": ratio("all"),
        "goals": {"metrics": METRICS_GOAL, "tracing": TRACING_GOAL},
    }


def render(report: dict[str, Any]) -> str:
    lines = [f"load generator: {report['load_generator']}", "",
             f"{'target':<10} {'req/s':>9}  rounds"]  # fmt: skip
    for key, value in report["rps"].items():
        errors = report["errors"][key]
        lines.append(f"{key:<10} {value:>9.1f}  {report['round_rps'][key]}"
                     + (f"  ({errors} errors)" if errors else ""))  # fmt: skip

    def verdict(value: float | None, goal: float | None) -> str:
        if value is None:
            return "-"
        if goal is None:
            return f"{value:.3f}"
        return f"{value:.3f} (goal >= {goal}: {'met' if value >= goal else 'not met'})"

    if report["cpu_us_per_request"]:
        lines += [
            "",
            "gateway CPU per request (us), and plain's / the target's "
            "(the throughput ratio of a CPU-bound gateway on a quiet machine):",
        ]
        for key, value in report["cpu_us_per_request"].items():
            lines.append(f"{key:<14} {value:>7.1f}  {report['cpu_ratio'][key]}")
    lines += ["", f"OTLP exports received: {report['otlp_exports_received']}",
              "metrics on / off:          " + verdict(report["metrics_vs_plain"], METRICS_GOAL),
              "tracing on / off:          " + verdict(report["tracing_vs_plain"], TRACING_GOAL),
              "tracing, 10% sampled:      " + verdict(report["tracing_10pct_vs_plain"], None),
              "all (+stats, dashboard):   " + verdict(report["all_vs_plain"], None)]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return load_main(__doc__ or "", benchmark, render, argv)


if __name__ == "__main__":
    raise SystemExit(main())
