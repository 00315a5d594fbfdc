"""Governance and workers benchmark: ratios measured in one run.

    python benchmarks/governance.py [--seconds N] [--concurrency C] [--rounds R] [--json]

(a) Throughput of non-streamed chat completions through `modelway run` with keys, rate
limits (key, team and route: requests and tokens) and budgets (key and team) on, against the
same gateway without them: with the in-process store, and with Redis (a redis-server this
script starts on a unix socket). Goal: at least 0.85 of the throughput.
(b) `--workers 2` against one worker (both with Redis state, no governance). Goal: 1.7x.

Every round starts a new process per target (`--same-processes` keeps one for the run): two
processes of the same gateway differ by up to about 8% in throughput on this machine (hash
seeds, memory layout), which one process per target would carry into every ratio. The
upstream is load.py's fixed-answer server; the load generator is `wrk` when installed
(C, light on the shared cores), else load.py's aiohttp client. Targets are measured in
alternating order over the rounds; results are pooled. It asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchkit import executable as _executable
from benchkit import free_port as _free_port
from benchkit import load_main
from load import (
    HOST,
    REQUEST_HEADERS,
    Phase,
    Server,
    Target,
    _check_answers,
    _measure,
    wrk_chat,
)

GOVERNANCE_GOAL = 0.85
WORKERS_GOAL = 1.7
CLIENT_KEY = REQUEST_HEADERS["authorization"].removeprefix("Bearer ")


def _config(upstream: int, governance: bool, redis: str | None) -> str:
    state = f"state: {{store: redis, url: '{redis}'}}\n" if redis else ""
    digest = "sha256:" + hashlib.sha256(CLIENT_KEY.encode()).hexdigest()
    plugins = "plugins: {openai: null, access_log: {enabled: false}}\n"
    if governance:
        plugins = (
            "plugins:\n"
            "  openai: null\n"
            "  access_log: {enabled: false}\n"
            "  keys:\n"
            "    teams: {bench: {limits: {requests_per_minute: 100000000, "
            "tokens_per_minute: 1000000000000}, budget: {usd: 1000000000, window: day}}}\n"
            f"    keys: [{{hash: '{digest}', consumer: bench, team: bench, limits: "
            "{requests_per_minute: 100000000, tokens_per_minute: 1000000000000}, "
            "budget: {usd: 1000000000, window: month}}]\n"
            "  limits: {routes: {chat: {requests_per_minute: 100000000}}}\n"
            "  budgets: null\n"
        )
    return (
        "gateway: {host: 127.0.0.1}\n" + state + plugins + "backends:\n"
        f"  up: {{provider: openai, base_url: 'http://{HOST}:{upstream}/v1', api_key: sk, "
        "model: gpt-4o-mini}\n"
        "routes:\n  - {name: chat, match: {model: '*'}, backend: up}\n"
    )


def _start(target: Target, config: Path, workers: int, workdir: Path,
           servers: list[Server]) -> None:
    """A new gateway process for `target`, answering, warmed up."""
    port = _free_port()
    server = Server(target.key, [_executable("modelway"), "run", "-c", str(config), "--host",
                                 HOST, "--port", str(port), "--workers", str(workers)],
                    workdir / f"{target.key}.log", port)
    server.start()
    servers.append(server)
    target.port, target.proxy = port, server
    server.wait_ready(60)
    time.sleep(0.5 if workers == 1 else 3.0)
    _check_answers(target.label, port)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--same-processes", dest="fresh", action="store_false",
        help="one process per target for the whole run (default: a new one every round)",
    )  # fmt: skip


def _measure_one(target: Target, upstream: Server, args: argparse.Namespace,
                 workdir: Path) -> None:
    if shutil.which("wrk"):
        wrk_chat(target.port, min(args.warmup, 1.0) or 0.5, args.concurrency, workdir)  # warm-up
        result = wrk_chat(target.port, args.seconds, args.concurrency, workdir)
        target.load.round_rps.append(result["rps"])
        target.load.errors["non-2xx"] = target.load.errors.get("non-2xx", 0) + result["errors"]
    else:
        _measure(target, upstream, target.load, args.concurrency, args.warmup, args.seconds,
                 args.timeout)


def _rps(phase: Phase) -> float:
    return sum(phase.round_rps) / len(phase.round_rps) if phase.round_rps else 0.0


def benchmark(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="modelway-governance-"))
    servers: list[Server] = []
    starts: dict[str, tuple[Path, int]] = {}
    try:
        redis_sock = workdir / "redis.sock"
        redis = Server("redis", ["redis-server", "--port", "0", "--unixsocket", str(redis_sock),
                                 "--save", "", "--appendonly", "no"], workdir / "redis.log")
        redis.start()
        servers.append(redis)
        upstream = Server("upstream", [sys.executable, str(Path(__file__).with_name("load.py")),
                                       "_upstream"], workdir / "upstream.log")
        upstream.start(stdout=subprocess.PIPE)
        servers.append(upstream)
        assert upstream.process is not None and upstream.process.stdout is not None
        upstream.port = int(upstream.process.stdout.readline())
        for _ in range(200):
            if redis_sock.exists():
                break
            time.sleep(0.05)
        url = f"unix://{redis_sock}"
        variants = {
            "plain": (False, None, 1),
            "governance_memory": (True, None, 1),
            "governance_redis": (True, url, 1),
            "one_worker": (False, url, 1),
            "two_workers": (False, url, 2),
        }
        targets = []
        for key, (governance, state, workers) in variants.items():
            config = workdir / f"{key}.yaml"
            config.write_text(_config(upstream.port, governance, state))
            targets.append(Target(key, key, 0, None))
            starts[key] = (config, workers)
        if not args.fresh:
            for target in targets:
                _start(target, *starts[target.key], workdir, servers)
        for round_no in range(args.rounds):
            for target in targets if round_no % 2 == 0 else targets[::-1]:
                print(f"round {round_no + 1}/{args.rounds}: {target.label}", file=log, flush=True)
                if args.fresh:
                    _start(target, *starts[target.key], workdir, servers)
                _measure_one(target, upstream, args, workdir)
                if args.fresh and target.proxy is not None:
                    target.proxy.stop()
        return _report(targets) | {"fresh_processes": bool(args.fresh)}
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _report(targets: list[Target]) -> dict[str, Any]:
    rps = {t.key: _rps(t.load) for t in targets}
    rounds = {t.key: [round(r, 1) for r in t.load.round_rps] for t in targets}
    errors = {t.key: sum(t.load.errors.values()) for t in targets}

    def ratio(a: str, b: str) -> float | None:
        return round(rps[a] / rps[b], 3) if rps[b] else None

    return {
        "load_generator": "wrk" if shutil.which("wrk") else "load.py aiohttp client",
        "rps": {k: round(v, 1) for k, v in rps.items()},
        "round_rps": rounds,
        "errors": errors,
        "governance_memory_vs_plain": ratio("governance_memory", "plain"),
        "governance_redis_vs_plain": ratio("governance_redis", "plain"),
        "two_workers_vs_one": ratio("two_workers", "one_worker"),
        "goals": {"governance": GOVERNANCE_GOAL, "workers": WORKERS_GOAL},
    }


def render(report: dict[str, Any]) -> str:
    fresh = ", a new process per target every round" if report.get("fresh_processes") else ""
    lines = [f"load generator: {report['load_generator']}{fresh}", "",
             f"{'target':<20} {'req/s':>9}  rounds"]
    for key, value in report["rps"].items():
        lines.append(f"{key:<20} {value:>9.1f}  {report['round_rps'][key]}"
                     + (f"  ({report['errors'][key]} errors)" if report["errors"][key] else ""))

    def verdict(value: float | None, goal: float) -> str:
        return "-" if value is None else f"{value:.3f} (goal >= {goal}: " + (
            "met)" if value >= goal else "not met)")

    lines += ["",
              "governance on (memory) / off: " + verdict(
                  report["governance_memory_vs_plain"], GOVERNANCE_GOAL),
              "governance on (redis)  / off: " + verdict(
                  report["governance_redis_vs_plain"], GOVERNANCE_GOAL),
              "--workers 2 / --workers 1:    " + verdict(
                  report["two_workers_vs_one"], WORKERS_GOAL)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return load_main(__doc__ or "", benchmark, render, argv, _options)


if __name__ == "__main__":
    raise SystemExit(main())
