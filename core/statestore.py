"""The configured state store (`state:`), as a service, guarded so that an outage is quick.

`open_store` builds the store the configuration names; `store_of(gateway)` is the one the
gateway serves with (the same across reloads: a changed `state:` section needs a restart).
`GuardedStore` wraps it: after a failure every call raises `StateUnavailable` at once for
`retry_seconds`, then the store is tried again, so a Redis outage costs no request more than
one socket timeout, and service comes back by itself when Redis does. An in-process store is
also offered as `immediate`, for the hot path to reserve and settle without awaiting.
`/readyz` pings it.
Services that work in the background on the store (the health board's sync, the statistics'
flush) register `on_close`: they stop, or flush a last time, before the store closes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from modelway.config import StateSettings
from modelway.services import Services
from modelway.state import Ask, Change, MemoryStore, Reservation, StateStore, StateUnavailable

if TYPE_CHECKING:
    from modelway.runtime import Gateway

logger = logging.getLogger("modelway.state")

T = TypeVar("T")


def open_store(settings: StateSettings) -> StateStore:
    """The store `state:` names (nothing connects or opens a file before first use)."""
    if settings.store == "redis":
        from modelway.stateredis import RedisStore

        assert settings.url is not None
        return RedisStore(settings.url, settings.timeout_seconds, settings.prefix)
    if settings.directory:
        from modelway.statesqlite import SQLiteStore

        return SQLiteStore(settings.directory)
    return MemoryStore()


class GuardedStore:
    """A store that, once it failed, fails fast for a while instead of waiting every time."""

    def __init__(self, inner: StateStore, retry_seconds: float, shared: bool) -> None:
        self.inner = inner
        self.retry_seconds = retry_seconds
        self.shared = shared
        """Whether other processes see the same state (Redis)."""
        self.kind = type(inner).__name__
        self.immediate = inner if isinstance(inner, MemoryStore) else None
        """The store itself when it answers in this process without awaiting (the in-memory
        and SQLite stores: `reserve_now`, `settle_now`), else None. It is never down."""
        self._down_until = 0.0
        self._down = False
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run `closer` when the store closes, before it does (once per registration)."""
        self._closers.append(closer)

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        if now < self._down_until:
            raise StateUnavailable(f"{self.kind} is unavailable (retrying shortly)")
        try:
            result = await call()
        except StateUnavailable as exc:
            self._down_until = time.monotonic() + self.retry_seconds
            if not self._down:
                self._down = True
                logger.error("state store unavailable: %s", exc)
            raise
        if self._down:
            self._down = False
            logger.warning("state store reachable again (%s)", self.kind)
        return result

    async def get(self, key: str) -> bytes | None:
        return await self._run(lambda: self.inner.get(key))

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        await self._run(lambda: self.inner.set(key, value, ttl_seconds))

    async def delete(self, key: str) -> bool:
        return await self._run(lambda: self.inner.delete(key))

    async def delete_if(self, key: str, expected: bytes) -> bool:
        return await self._run(lambda: self.inner.delete_if(key, expected))

    async def add(self, key: str, amount: float, ttl_seconds: float | None = None) -> float:
        return await self._run(lambda: self.inner.add(key, amount, ttl_seconds))

    async def reserve(
        self, key: str, amount: float, limit: float, window_seconds: float
    ) -> Reservation:
        return await self._run(lambda: self.inner.reserve(key, amount, limit, window_seconds))

    async def reserve_all(self, asks: Sequence[Ask]) -> list[Reservation]:
        return await self._run(lambda: self.inner.reserve_all(asks))

    async def settle(self, changes: Sequence[Change]) -> None:
        await self._run(lambda: self.inner.settle(changes))

    async def keys(self, prefix: str) -> list[str]:
        return await self._run(lambda: self.inner.keys(prefix))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._run(lambda: self.inner.get_many(keys))

    async def merge_fields(
        self,
        key: str,
        sums: Mapping[str, float],
        maxima: Mapping[str, float] | None = None,
        minima: Mapping[str, float] | None = None,
    ) -> None:
        await self._run(lambda: self.inner.merge_fields(key, sums, maxima, minima))

    async def fields(self, key: str) -> dict[str, float]:
        return await self._run(lambda: self.inner.fields(key))

    async def ping(self) -> bool:
        try:
            return await self._run(self.inner.ping)
        except StateUnavailable:
            return False

    async def close(self) -> None:
        closers, self._closers = self._closers, []
        for closer in closers:
            try:
                await closer()
            except Exception:  # a closer's failure must not keep the store open
                logger.exception("closing a state store user failed")
        await self.inner.close()


def guarded(settings: StateSettings) -> GuardedStore:
    return GuardedStore(open_store(settings), settings.retry_seconds, settings.store == "redis")


def store_of(gateway: Gateway) -> GuardedStore:
    """The gateway's state store, created on first use and kept across reloads."""
    store = gateway.services.setdefault(StateStore, lambda: guarded(gateway.config.state))
    assert isinstance(store, GuardedStore)
    return store


def readiness_probe(gateway: Gateway) -> Callable[[], Awaitable[str | None]]:
    """A `/readyz` probe: the store must answer a ping."""

    async def probe() -> str | None:
        store = gateway.services.get(StateStore)
        if store is None or await store.ping():
            return None
        return f"the state store ({getattr(store, 'kind', 'store')}) does not answer"

    return probe


async def close_store(services: Services) -> None:
    """Close the gateway's store (at the end of the process), if one was opened."""
    store = services.get(StateStore)
    if store is not None:
        with contextlib.suppress(StateUnavailable):
            await store.close()
