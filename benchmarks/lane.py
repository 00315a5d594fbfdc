"""Same-API requests through the same-API lane against the hub (decode and encode) path.

    python benchmarks/lane.py                  # 2 rounds x 4 modes x (1 s warm-up + 5 s)
    python benchmarks/lane.py --seconds 3 --rounds 3 --concurrency 16 --json

One gateway (`modelway run`, access log off) with two backends per API on one upstream (a raw
asyncio server answering fixed bytes, never the bottleneck): `<api>-lane` (the default
same-API lane: the client's own body and the upstream's own bytes) and `<api>-hub`
(`same_api: false`: the request translated to the canonical shape and encoded again, the
answer parsed and re-encoded, a stream decoded chunk by chunk). OpenAI chat completions to an
`openai` backend and Anthropic Messages to an `anthropic` backend, whole and streamed (24
text chunks), measured in alternating order per round in one run: requests/s with
`--concurrency` closed-loop clients, mean latency, time to the first byte, and the gateway's
CPU time per request. The result is the ratio lane / hub per API. Nothing asserts a time.
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
from benchkit import HOST, Server, asks_stream, executable, free_port, take_request
from responses import ChatUpstream, _reply, measure

LANES = ("lane", "hub")
APIS = {
    "openai": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hello"}]}),
    "anthropic": (
        "/v1/messages",
        {"max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]},
    ),
}
WORDS = 24
MESSAGE = {
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench",
    "content": [{"type": "text", "text": " ".join(["word"] * WORDS)}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": WORDS},
}  # fmt: skip


def _anthropic_stream() -> bytes:
    start = {**MESSAGE, "content": [], "stop_reason": None}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    delta = {"type": "text_delta", "text": "word "}
    events += [{"type": "content_block_delta", "index": 0, "delta": delta}] * WORDS
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": WORDS}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


class LaneUpstream(ChatUpstream):
    """responses.py's chat server that also answers Anthropic Messages (by the path)."""

    MESSAGES_WHOLE = _reply("application/json", json.dumps(MESSAGE).encode())
    MESSAGES_STREAM = _reply("text/event-stream", _anthropic_stream())

    def _answer_one(self) -> bool:
        if not bytes(self.buffer[:32]).startswith(b"POST /v1/messages"):
            return super()._answer_one()
        assert self.transport is not None
        body = take_request(self.buffer)
        if body is None:
            return False
        self.transport.write(self.MESSAGES_STREAM if asks_stream(body) else self.MESSAGES_WHOLE)
        return True


async def _serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LaneUpstream, HOST, port, backlog=1024)
    async with server:
        await server.serve_forever()


def _body(api: str, lane: str, streamed: bool) -> bytes:
    extra = {"stream": True} if streamed else {}
    return json.dumps({"model": f"{api}-{lane}", **APIS[api][1], **extra}).encode()


async def _rounds(
    base: str, args: argparse.Namespace, pid: int
) -> dict[str, list[dict[str, float]]]:
    order = [(api, lane, streamed) for api in APIS for streamed in (False, True) for lane in LANES]
    results: dict[str, list[dict[str, float]]] = {}
    for number in range(args.rounds):
        for api, lane, streamed in order if number % 2 == 0 else list(reversed(order)):
            url = base + APIS[api][0]
            body = _body(api, lane, streamed)
            result = await measure(url, body, args.concurrency, args.warmup, args.seconds, pid)
            name = f"{api} {lane} {'stream' if streamed else 'whole'}"
            results.setdefault(name, []).append(result)
    return results


def _config(upstream_port: int) -> str:
    base = f"http://{HOST}:{upstream_port}"
    return (
        "gateway: {host: 127.0.0.1}\n"
        "plugins: {openai: null, anthropic: null, anthropic_api: null,"
        " access_log: {enabled: false}}\n"
        "backends:\n"
        f"  openai-lane: {{provider: openai, base_url: '{base}/v1', api_key: sk-bench}}\n"
        f"  openai-hub: {{provider: openai, base_url: '{base}/v1', api_key: sk-bench,"
        " same_api: false}\n"
        f"  anthropic-lane: {{provider: anthropic, base_url: '{base}', api_key: sk-bench}}\n"
        f"  anthropic-hub: {{provider: anthropic, base_url: '{base}', api_key: sk-bench,"
        " same_api: false}\n"
        "routes:\n"
        + "".join(
            f"  - {{match: {{model: {api}-{lane}}}, backend: {api}-{lane}}}\n"
            for api in APIS
            for lane in LANES
        )
    )


def summarize(results: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    pooled = {
        name: {key: statistics.fmean(r[key] for r in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    kinds = [f"{api} {kind}" for api in APIS for kind in ("whole", "stream")]

    def ratio(key: str) -> dict[str, float]:
        return {k: pooled[k.replace(" ", " lane ")][key] / pooled[k.replace(" ", " hub ")][key]
                for k in kinds}  # fmt: skip

    return {
        "modes": pooled,
        "lane_over_hub_rps": ratio("rps"),
        "lane_over_hub_cpu": ratio("cpu_ms"),
        "per_round": {name: [round(r["rps"], 1) for r in runs] for name, runs in results.items()},
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{'mode':<24}{'req/s':>9}{'mean ms':>10}{'ttfb ms':>10}{'cpu ms/req':>12}  req/s per round"
    ]
    for name, row in report["modes"].items():
        rounds = ", ".join(str(v) for v in report["per_round"][name])
        lines.append(
            f"{name:<24}{row['rps']:>9.1f}{row['mean_ms']:>10.2f}"
            f"{row['ttfb_ms']:>10.2f}{row['cpu_ms']:>12.3f}  {rounds}"
        )
    rps, cpu = report["lane_over_hub_rps"], report["lane_over_hub_cpu"]
    for kind in rps:
        lines.append(
            f"lane / hub, {kind}: throughput {rps[kind]:.2f}, gateway CPU per request "
            f"{cpu[kind]:.2f}"
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
