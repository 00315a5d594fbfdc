"""Built-in plugin `stats`: per-route and per-variant statistics while the gateway runs.

Fed by `modelway_request_done` (the access record). For each route, and within it for each
(backend, variant) that served, it counts requests, errors (status >= 400 or an error),
streams, prompt and completion tokens, HTTP statuses, and summarises latency and time to first
token (streams only): exact count and mean, p50 and p95 from a bounded reservoir sample.
Variants of a split route therefore appear side by side. The board lives in
the gateway's `StatsService`, so it outlives configuration reloads. Requests that matched no
route (unknown paths, rejected keys, the admin API itself) are not counted.

With a shared state store (Redis), every process also adds its counts to the store
(`modelway.plugins.ops.statshare`, batched every `flush_seconds`), and `collect`, which the
admin API, `modelway stats` and the dashboard read, gives the sum over every process
(`scope: "shared"`, percentiles from histogram buckets); `snapshot` stays this process's own.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.plugins.governance.costs import served_cost
from modelway.plugins.ops.statshare import StatsShare, variant_label
from modelway.services import Services, StatsService
from modelway.state import StateUnavailable
from modelway.statestore import store_of

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway



class Settings(BaseModel):
    """`plugins: {stats: {...}}`."""

    model_config = ConfigDict(extra="forbid")
    reservoir_size: int = Field(1000, ge=10, le=100_000)
    """Samples kept per series for percentiles (exact below this many requests)."""
    flush_seconds: float = Field(1.0, gt=0, le=60)
    """With a shared state store: how often this process sends its counts to it."""


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Series:
    """A stream of numbers: exact count, sum and max; a uniform reservoir for percentiles."""

    __slots__ = ("_rng", "count", "maximum", "samples", "size", "total")

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.count = 0
        self.total = 0.0
        self.maximum = 0.0
        self.samples: list[float] = []
        self._rng = rng

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.maximum = max(self.maximum, value)
        if len(self.samples) < self.size:
            self.samples.append(value)
            return
        slot = self._rng.randrange(self.count)  # Algorithm R: each value kept with size/count
        if slot < self.size:
            self.samples[slot] = value

    def summary(self) -> dict[str, float | int | None]:
        ordered = sorted(self.samples)
        return {
            "count": self.count,
            "mean": _round(self.total / self.count) if self.count else None,
            "p50": _round(percentile(ordered, 0.50)),
            "p95": _round(percentile(ordered, 0.95)),
            "max": _round(self.maximum) if self.count else None,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _number(record: Mapping[str, object], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def is_error(record: Mapping[str, object]) -> bool:
    status = _number(record, "status")
    return (status is not None and status >= 400) or record.get("error") is not None


class Bucket:
    """The statistics of one route, or of one (backend, variant) within it."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.requests = 0
        self.errors = 0
        self.streams = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.statuses: Counter[str] = Counter()
        self.latency = Series(size, rng)
        self.ttft = Series(size, rng)

    def add(self, record: Mapping[str, object]) -> None:
        self.requests += 1
        self.errors += is_error(record)
        self.streams += record.get("stream") is True
        self.statuses[str(record.get("status"))] += 1
        self.prompt_tokens += int(_number(record, "prompt_tokens") or 0)
        self.completion_tokens += int(_number(record, "completion_tokens") or 0)
        self.cost_usd += _number(record, "cost_usd") or 0.0  # `budgets`'s, else priced by the hook
        latency = _number(record, "latency_ms")
        if latency is not None:
            self.latency.add(latency)
        ttft = _number(record, "ttft_ms")
        if ttft is not None and record.get("stream") is True:
            self.ttft.add(ttft)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4) if self.requests else 0.0,
            "streams": self.streams,
            "statuses": dict(sorted(self.statuses.items())),
            "latency_ms": self.latency.summary(),
            "ttft_ms": self.ttft.summary(),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


class RouteStats:
    """One route's totals and its (backend, variant) buckets."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self._size = size
        self._rng = rng
        self.total = Bucket(size, rng)
        self.variants: dict[tuple[str, str | None], Bucket] = {}

    def add(self, record: Mapping[str, object]) -> None:
        self.total.add(record)
        backend = record.get("backend")
        if not isinstance(backend, str):
            return  # never reached a backend (rejected by a policy, no backend to try)
        variant = record.get("variant")
        key = (backend, variant if isinstance(variant, str) else None)
        bucket = self.variants.get(key)
        if bucket is None:
            bucket = self.variants[key] = Bucket(self._size, self._rng)
        bucket.add(record)

    def snapshot(self) -> dict[str, Any]:
        variants = {}
        for (backend, variant), bucket in sorted(
            self.variants.items(), key=lambda item: variant_label(*item[0])
        ):
            view = {"backend": backend, "variant": variant, **bucket.snapshot()}
            view["share"] = round(bucket.requests / self.total.requests, 4)
            variants[variant_label(backend, variant)] = view
        return {**self.total.snapshot(), "variants": variants}


class StatsBoard:
    """Every route's statistics since the gateway started (or since `reset`)."""

    def __init__(self, settings: Settings | None = None, seed: int | None = None) -> None:
        self.settings = settings or Settings()
        self._rng = random.Random(seed)
        self.routes: dict[str, RouteStats] = {}
        self.started = time.time()
        self._started_monotonic = time.monotonic()
        self.share: StatsShare | None = None
        """Set when the state store is shared: the counts of every process, summed."""

    def configure(self, settings: Settings) -> None:
        """New settings (a reload): they apply to series created from now on."""
        self.settings = settings
        if self.share is not None:
            self.share.flush_seconds = settings.flush_seconds

    def reset(self) -> None:
        self.routes = {}
        self.started = time.time()
        self._started_monotonic = time.monotonic()

    def record(self, record: Mapping[str, object]) -> None:
        route = record.get("route")
        if not isinstance(route, str):
            return
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats(self.settings.reservoir_size, self._rng)
        stats.add(record)
        if self.share is not None:
            self.share.record(record)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe view of every route, each with its variants side by side."""
        return {
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "uptime_seconds": round(time.monotonic() - self._started_monotonic, 3),
            "scope": "process",
            "routes": {name: stats.snapshot() for name, stats in sorted(self.routes.items())},
        }

    async def collect(self) -> dict[str, Any]:
        """Every process's statistics when the store is shared; else (or while the store
        cannot be reached, saying why) this process's."""
        if self.share is None:
            return self.snapshot()
        try:
            return await self.share.collect()
        except StateUnavailable as exc:
            return {**self.snapshot(), "store_error": str(exc)}

    async def clear(self) -> None:
        """`reset`, for every process sharing the store too (raises `StateUnavailable`, and
        resets nothing, when the store cannot be reached)."""
        if self.share is not None:
            await self.share.clear()
        self.reset()

    def share_on(self, gateway: Gateway) -> None:
        """Share the counts when the gateway's state store is shared (once)."""
        store = store_of(gateway)
        if self.share is None and store.shared:
            self.share = StatsShare(store, self.settings.flush_seconds)
            store.on_close(self.share.close)


def board_of(services: Services) -> StatsBoard:
    """The board kept in the gateway's services, created on first use."""
    board = services.setdefault(StatsService, StatsBoard)
    assert isinstance(board, StatsBoard)
    return board


class StatsPlugin:
    """Adds every routed request's access record to the gateway's `StatsService`."""

    Settings = Settings

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        board_of(gateway.services).configure(gateway.plugin_settings("stats") or Settings())

    @hookimpl
    def modelway_startup(self, gateway: Gateway) -> None:
        board_of(gateway.services).share_on(gateway)

    @hookimpl
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        if ctx.gateway is not None:
            if "cost_usd" not in record and ctx.usage is not None:  # no `budgets`: price it here
                record = {**record, "cost_usd": served_cost(ctx) or 0.0}
            board_of(ctx.gateway.services).record(record)
