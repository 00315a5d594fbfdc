"""Same-API requests through the same-API lane against the hub (decode and encode) path.

    python benchmarks/lane.py                  # 2 rounds x 4 modes x (1 s warm-up + 5 s)
    python benchmarks/lane.py --seconds 3 --rounds 3 --concurrency 16 --json

One gateway (`modelway run`, access log off) with two `openai` backends on one OpenAI
upstream (responses.py's raw asyncio server, fixed bytes, never the bottleneck): `lane` (the
default: the client's own body and the upstream's own bytes) and `hub` (`same_api: false`:
the request translated to the canonical shape and encoded again, the answer parsed and
re-encoded, a stream decoded chunk by chunk). OpenAI chat completions, whole and streamed
(a 24-chunk answer), measured in alternating order per round in one run: requests/s with
`--concurrency` closed-loop clients, mean latency, time to the first byte, and the gateway's
CPU time per request. The result is the ratio lane / hub. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import HOST, Server, executable, free_port
from responses import _serve_upstream, measure

LANES = ("lane", "hub")
REQUEST = {"messages": [{"role": "user", "content": "Hello"}], "temperature": 0.2}


def _body(lane: str, streamed: bool) -> bytes:
    extra = {"stream": True} if streamed else {}
    return json.dumps({"model": lane, **REQUEST, **extra}).encode()


async def _rounds(
    base: str, args: argparse.Namespace, pid: int
) -> dict[str, list[dict[str, float]]]:
    order = [(lane, streamed) for streamed in (False, True) for lane in LANES]
    results: dict[str, list[dict[str, float]]] = {}
    for number in range(args.rounds):
        for lane, streamed in order if number % 2 == 0 else list(reversed(order)):
            url = base + "/v1/chat/completions"
            result = await measure(
                url, _body(lane, streamed), args.concurrency, args.warmup, args.seconds, pid
            )
            results.setdefault(f"{lane} {'stream' if streamed else 'whole'}", []).append(result)
    return results


def _config(upstream_port: int) -> str:
    base = f"http://{HOST}:{upstream_port}/v1"
    return (
        "gateway: {host: 127.0.0.1}\n"
        "plugins: {openai: null, access_log: {enabled: false}}\n"
        "backends:\n"
        f"  lane: {{provider: openai, base_url: '{base}', api_key: sk-bench}}\n"
        f"  hub: {{provider: openai, base_url: '{base}', api_key: sk-bench, same_api: false}}\n"
        "routes:\n"
        "  - {match: {model: lane}, backend: lane}\n"
        "  - {match: {model: hub}, backend: hub}\n"
    )


def summarize(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    pooled = {
        name: {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        for name, runs in results.items()
    }

    def ratio(key: str) -> dict[str, float]:
        return {k: pooled[f"lane {k}"][key] / pooled[f"hub {k}"][key] for k in ("whole", "stream")}

    return {
        "modes": pooled,
        "lane_over_hub_rps": ratio("rps"),
        "lane_over_hub_cpu": ratio("cpu_ms"),
        "per_round": {name: [round(r["rps"], 1) for r in runs] for name, runs in results.items()},
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{'mode':<14}{'req/s':>9}{'mean ms':>10}{'ttfb ms':>10}{'cpu ms/req':>12}  req/s per round"
    ]
    for name, row in report["modes"].items():
        rounds = ", ".join(str(v) for v in report["per_round"][name])
        lines.append(
            f"{name:<14}{row['rps']:>9.1f}{row['mean_ms']:>10.2f}"
            f"{row['ttfb_ms']:>10.2f}{row['cpu_ms']:>12.3f}  {rounds}"
        )
    rps, cpu = report["lane_over_hub_rps"], report["lane_over_hub_cpu"]
    lines.append(f"lane / hub throughput: whole {rps['whole']:.2f}, streamed {rps['stream']:.2f}")
    lines.append(
        f"lane / hub gateway CPU per request: whole {cpu['whole']:.2f}, "
        f"streamed {cpu['stream']:.2f}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mw-lane-bench-") as work:
        directory = Path(work)
        upstream_port, gateway_port = free_port(), free_port()
        upstream = Server(
            "upstream",
            [sys.executable, __file__, "_upstream", str(upstream_port)],
            directory / "upstream.log",
            upstream_port,
        )
        config = directory / "gateway.yaml"
        config.write_text(_config(upstream_port))
        command = [executable("modelway"), "run", "-c", str(config), "--port", str(gateway_port)]
        gateway = Server("modelway", command, directory / "gateway.log", gateway_port)
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
