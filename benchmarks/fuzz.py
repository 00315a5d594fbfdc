"""The long fuzz run: the fuzz suite's strategies for ten thousand cases and more.

    python benchmarks/fuzz.py [--cases N] [--seed S] [--json]

The same gateway, upstreams, strategies and checks as `tests/test_fuzz.py` (see
`tests/fuzzkit.py`): every ingress API's bodies (OpenAI chat, embeddings, Responses;
Anthropic Messages, count_tokens; Gemini generateContent, streamGenerateContent,
countTokens), each routed to OpenAI, Anthropic and Gemini backends, and raw HTTP-layer
requests. The cases are split evenly over the nine; a seed makes a run repeatable (a new
seed explores new cases). It prints the status counts per ingress and every problem found
(a 5xx, an error body not in the client's API shape, a traceback or error in the gateway's
log, no answer), and exits 1 when there was one. The goal: 0 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_http import RawCase, raw_requests
from tests.fuzz_strategies import INGRESSES, wire_body
from tests.fuzzkit import (
    Answer,
    Fuzzed,
    NoAnswer,
    api_of,
    auth_headers,
    fuzz_gateway,
    problems,
    request_bytes,
    send,
)

HTTP = "http-layer"


class Tally:
    def __init__(self) -> None:
        self.statuses: dict[str, Counter[str]] = {}
        self.problems: dict[str, list[str]] = {}

    def record(self, name: str, outcome: str, found: list[str], case: bytes) -> None:
        self.statuses.setdefault(name, Counter())[outcome] += 1
        if found:
            self.problems.setdefault(name, []).append(f"{case[:300]!r}\n  " + "\n  ".join(found))


def _outcome(fuzzed: Fuzzed, api: str, data: bytes, may_close: bool) -> tuple[str, list[str]]:
    try:
        answer: Answer = send(fuzzed.gateway.port, data)
    except NoAnswer as exc:
        found = [f"traceback logged:\n{t}" for t in fuzzed.log.take()]
        return "closed", found if may_close else [*found, str(exc)]
    return str(answer.status), problems(fuzzed, api, answer)


def run_ingress(fuzzed: Fuzzed, tally: Tally, name: str, cases: int, seed: int) -> None:
    api, paths, bodies = INGRESSES[name]

    @settings(
        max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(path=paths, body=wire_body(bodies), chunked=st.booleans())
    def one(path: str, body: bytes, chunked: bool) -> None:
        headers = [(b"Content-Type", b"application/json"), *auth_headers(api)]
        data = request_bytes(b"POST", path.encode(), headers, body, chunked=chunked)
        outcome, found = _outcome(fuzzed, api, data, False)
        tally.record(name, outcome, found, data)

    _seeded(one, seed)()


def run_http(fuzzed: Fuzzed, tally: Tally, cases: int, seed: int) -> None:
    @settings(
        max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=raw_requests())
    def one(case: RawCase) -> None:
        outcome, found = _outcome(fuzzed, api_of(case.path, case.data), case.data, False)
        tally.record(HTTP, outcome, found, case.data)

    _seeded(one, seed)()


def _seeded(test: Any, seed: int) -> Any:
    from hypothesis import seed as hypothesis_seed

    return hypothesis_seed(seed)(test)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_800, help="in all (default 10800)")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--json", action="store_true", help="the counts as JSON on stdout")
    args = parser.parse_args()
    names = sorted(INGRESSES)
    each = max(1, args.cases // (len(names) + 1))
    tally = Tally()
    started = time.perf_counter()
    with fuzz_gateway() as fuzzed:
        for index, name in enumerate(names):
            run_ingress(fuzzed, tally, name, each, args.seed + index)
            print(f"{name}: {dict(tally.statuses.get(name, {}))}", file=sys.stderr, flush=True)
        run_http(fuzzed, tally, each, args.seed + len(names))
    seconds = time.perf_counter() - started
    report(tally, seconds, args.json)
    return 1 if tally.problems else 0


def report(tally: Tally, seconds: float, as_json: bool) -> None:
    total = sum(sum(c.values()) for c in tally.statuses.values())
    fives = sum(n for c in tally.statuses.values() for s, n in c.items() if s.startswith("5"))
    if as_json:
        counts = {k: dict(sorted(v.items())) for k, v in tally.statuses.items()}
        print(
            json.dumps(
                {
                    "cases": total,
                    "5xx": fives,
                    "statuses": counts,
                    "seconds": seconds,
                    "problems": {k: len(v) for k, v in tally.problems.items()},
                }
            )
        )
        return
    print(
        f"\n{total} cases in {seconds:.0f} s; 5xx: {fives}; problems: "
        f"{sum(len(v) for v in tally.problems.values())}\n"
    )
    print(f"{'ingress':24} {'cases':>6}  statuses")
    for name, counts in tally.statuses.items():
        shown = "  ".join(f"{s}:{n}" for s, n in sorted(counts.items()))
        print(f"{name:24} {sum(counts.values()):>6}  {shown}")
    for name, found in tally.problems.items():
        print(f"\n{name}: {len(found)} problem(s); the first ones:")
        for text in found[:5]:
            print("- " + text[:1500])


if __name__ == "__main__":
    sys.exit(main())
