"""The A/B statistics of every process on a shared state store (Redis), summed.

With `state: {store: redis}`, each process adds what it counted to one hash of numbers in the
store, `stats:variants`, one field per (route, backend, variant, measure): requests, errors,
streams, tokens, cost, HTTP statuses, and latency and time to first token as fixed histogram
buckets (four per doubling, from 1 ms: p50 and p95 within about 9%), their count, sum and
maximum. A request only appends its access record to a list (`record`); every `flush_seconds`
the list is added up and merged into the hash in one round trip (`merge_fields`), off the
request path. `collect` sends this process's last delta, reads the hash and gives the same
shape as the per-process board, with `scope: "shared"`. When the store cannot be reached the
delta is kept and sent later, and the caller falls back to the process's own numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from modelway.state import StateUnavailable
from modelway.statestore import GuardedStore

logger = logging.getLogger("modelway.stats")

KEY = "stats:variants"
SEP = "\x1f"
STEPS = 4
"""Histogram buckets per doubling."""
LAST = STEPS * 22
"""The last bucket holds everything from about 50 minutes up."""
SINCE = "since"
SERIES = ("latency", "ttft")


def bucket_of(value: float) -> int:
    """The histogram bucket of a value in ms: bucket i holds (2^((i-1)/4), 2^(i/4)]."""
    if value <= 1.0:
        return 0
    return min(LAST, math.ceil(STEPS * math.log2(value)))


def bounds(index: int) -> tuple[float, float]:
    low = 0.0 if index == 0 else 2.0 ** ((index - 1) / STEPS)
    return low, 2.0 ** (index / STEPS)


def _number(record: Mapping[str, object], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class Delta:
    """What records add to the shared hash, added up locally first."""

    def __init__(self) -> None:
        self.sums: defaultdict[str, float] = defaultdict(float)
        self.maxima: dict[str, float] = {}
        self.minima: dict[str, float] = {}

    def __bool__(self) -> bool:
        return bool(self.sums or self.maxima or self.minima)

    def add(self, record: Mapping[str, object], wall: float) -> None:
        route = record.get("route")
        if not isinstance(route, str):
            return
        self.minima[SINCE] = min(self.minima.get(SINCE, wall), wall)
        self._bucket(f"{route}{SEP}{SEP}{SEP}", record)
        backend = record.get("backend")
        if isinstance(backend, str):
            variant = record.get("variant")
            self._bucket(f"{route}{SEP}{backend}{SEP}{_text(variant)}{SEP}", record)

    def _bucket(self, prefix: str, record: Mapping[str, object]) -> None:
        sums = self.sums
        sums[prefix + "requests"] += 1
        status = _number(record, "status")
        sums[prefix + "errors"] += (status is not None and status >= 400) or (
            record.get("error") is not None
        )
        stream = record.get("stream") is True
        sums[prefix + "streams"] += stream
        sums[f"{prefix}status:{record.get('status')}"] += 1
        for name in ("prompt_tokens", "completion_tokens", "cost_usd"):
            sums[prefix + name] += _number(record, name) or 0.0
        self._series(prefix + "latency", _number(record, "latency_ms"))
        if stream:
            self._series(prefix + "ttft", _number(record, "ttft_ms"))

    def _series(self, prefix: str, value: float | None) -> None:
        if value is None:
            return
        self.sums[prefix + ":n"] += 1
        self.sums[prefix + ":sum"] += value
        self.sums[f"{prefix}:b{bucket_of(value)}"] += 1
        name = prefix + ":max"
        self.maxima[name] = max(self.maxima.get(name, value), value)

    def merge(self, other: Delta) -> None:
        """Take in a delta that could not be sent (it goes with this one)."""
        for name, amount in other.sums.items():
            self.sums[name] += amount
        for name, value in other.maxima.items():
            self.maxima[name] = max(self.maxima.get(name, value), value)
        for name, value in other.minima.items():
            self.minima[name] = min(self.minima.get(name, value), value)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


class StatsShare:
    """Sends one process's statistics to the shared hash; reads everyone's back."""

    def __init__(
        self, store: GuardedStore, flush_seconds: float = 1.0, wall: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.wall = wall
        self._records: list[Mapping[str, object]] = []
        self._unsent = Delta()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def record(self, record: Mapping[str, object]) -> None:
        """The hot path: keep the record until the next flush."""
        self._records.append(record)
        if self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        with contextlib.suppress(RuntimeError):  # no loop (a test's board): flushed on demand
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_seconds, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._flush_quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except StateUnavailable:
            if self._timer is None:
                self._schedule()  # the delta waits; try again later
        except Exception:
            logger.exception("sending the statistics to the state store failed")

    async def flush(self) -> None:
        """Add up the records kept since the last flush and merge them into the store."""
        async with self._lock:
            delta, self._unsent = self._unsent, Delta()
            records, self._records = self._records, []
            wall = self.wall()
            for record in records:
                delta.add(record, wall)
            if not delta:
                return
            try:
                await self.store.merge_fields(KEY, delta.sums, delta.maxima, delta.minima)
            except StateUnavailable:
                delta.merge(self._unsent)
                self._unsent = delta
                raise

    async def collect(self) -> dict[str, Any]:
        """Every process's statistics, summed (raises `StateUnavailable`)."""
        await self.flush()
        return view(await self.store.fields(KEY), self.wall())

    async def clear(self) -> None:
        """Start afresh for every process (deltas other processes have not sent yet remain)."""
        async with self._lock:
            await self.store.delete(KEY)
            self._records, self._unsent = [], Delta()

    async def close(self) -> None:
        """Send what is left (the store closes next)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await asyncio.gather(*self._tasks, return_exceptions=True)  # bounded by the timeout
        with contextlib.suppress(StateUnavailable):
            await self.flush()


# ----------------------------------------------------------------------------- reading back


def view(fields: Mapping[str, float], wall: float) -> dict[str, Any]:
    """The shared hash in the shape of `StatsBoard.snapshot`."""
    buckets: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    for name, value in fields.items():
        parts = name.split(SEP)
        if len(parts) == 4:
            route, backend, variant, measure = parts
            buckets.setdefault(route, {}).setdefault((backend, variant), {})[measure] = value
    since = fields.get(SINCE, wall)
    return {
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)),
        "uptime_seconds": round(wall - since, 3),
        "scope": "shared",
        "routes": {name: _route(found) for name, found in sorted(buckets.items())},
    }


def variant_label(backend: str, variant: str | None) -> str:
    """How a (backend, variant) pair is named: the variant, qualified when it differs."""
    if variant is None or variant == backend:
        return backend
    return f"{variant}@{backend}"


def _route(found: dict[tuple[str, str], dict[str, float]]) -> dict[str, Any]:
    total = bucket_view(found.get(("", ""), {}))
    variants: dict[str, Any] = {}
    for (backend, variant), measures in found.items():
        if not backend:
            continue
        label = variant_label(backend, variant or None)
        variants[label] = {"backend": backend, "variant": variant or None,
                           **bucket_view(measures)}  # fmt: skip
        variants[label]["share"] = (
            round(variants[label]["requests"] / total["requests"], 4) if total["requests"] else 0.0
        )
    return {**total, "variants": dict(sorted(variants.items()))}


def bucket_view(measures: Mapping[str, float]) -> dict[str, Any]:
    """One bucket's numbers, as `Bucket.snapshot` gives them."""
    requests = int(measures.get("requests", 0))
    errors = int(measures.get("errors", 0))
    statuses = {
        name[len("status:") :]: int(count)
        for name, count in measures.items()
        if name.startswith("status:")
    }
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "streams": int(measures.get("streams", 0)),
        "statuses": dict(sorted(statuses.items())),
        "latency_ms": series_view(measures, "latency"),
        "ttft_ms": series_view(measures, "ttft"),
        "prompt_tokens": int(measures.get("prompt_tokens", 0)),
        "completion_tokens": int(measures.get("completion_tokens", 0)),
        "cost_usd": round(measures.get("cost_usd", 0.0), 6),
    }


def series_view(measures: Mapping[str, float], name: str) -> dict[str, float | int | None]:
    count = int(measures.get(name + ":n", 0))
    counts = {
        int(key[len(name) + 2 :]): value
        for key, value in measures.items()
        if key.startswith(name + ":b")
    }
    top = measures.get(name + ":max")
    return {
        "count": count,
        "mean": round(measures.get(name + ":sum", 0.0) / count, 2) if count else None,
        "p50": _quantile(counts, count, 0.50, top),
        "p95": _quantile(counts, count, 0.95, top),
        "max": round(top, 2) if count and top is not None else None,
    }


def _quantile(
    counts: Mapping[int, float], count: int, fraction: float, top: float | None
) -> float | None:
    """The nearest-rank value, interpolated within its bucket, never above the maximum."""
    if not count:
        return None
    rank = max(1, math.ceil(fraction * count))
    seen = 0.0
    for index in sorted(counts):
        if seen + counts[index] >= rank:
            low, high = bounds(index)
            value = low + (high - low) * (rank - seen) / counts[index]
            return round(min(value, top) if top is not None else value, 2)
        seen += counts[index]
    return round(top, 2) if top is not None else None
