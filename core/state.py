"""Shared state behind one small interface: what several gateway workers or instances share.

Counters, budgets, created keys, backend health, A/B statistics and stored responses all go
through a `StateStore`. The default keeps everything in this process (`MemoryStore`); the
`state:` section of the configuration chooses another (an embedded SQLite file that survives
a restart, or Redis for several workers and instances), provided by the plugin that
implements it. Keys are plain strings, namespaced by their user (`limits:`, `responses:` ...);
values are bytes. Every method is a coroutine and must never block the event loop.

`add` and `reserve` are atomic: a counter or a window shared by many workers cannot be
overshot by requests racing each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of `reserve`: granted or not, what is left, when the window resets."""

    granted: bool
    used: float
    limit: float
    reset_seconds: float

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.used)


class StateUnavailable(Exception):
    """The store cannot be reached (a Redis outage); callers fail open or closed."""


@runtime_checkable
class StateStore(Protocol):
    """What every state backend implements."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool:
        """Remove a key; True if it was there."""
        ...

    async def add(self, key: str, amount: float, ttl_seconds: float | None = None) -> float:
        """Add to a numeric counter (created at 0) and return its new value, atomically.
        `ttl_seconds` is set when the counter is created."""
        ...

    async def reserve(
        self, key: str, amount: float, limit: float, window_seconds: float
    ) -> Reservation:
        """Take `amount` from a fixed window of `window_seconds` holding at most `limit`,
        atomically; nothing is taken when it would go over (granted False)."""
        ...

    async def keys(self, prefix: str) -> list[str]:
        """The keys that start with `prefix` (for listing; not for the hot path)."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers (readiness)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """The in-process default: a dict with expiry. Nothing to install; one process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[bytes | float, float | None]] = {}

    def _live(self, key: str) -> bytes | float | None:
        found = self._values.get(key)
        if found is None:
            return None
        value, expires = found
        if expires is not None and expires <= self._clock():
            del self._values[key]
            return None
        return value

    def _expiry(self, ttl_seconds: float | None) -> float | None:
        return None if ttl_seconds is None else self._clock() + ttl_seconds

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        if isinstance(value, float):
            return repr(value).encode()
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        self._values[key] = (value, self._expiry(ttl_seconds))

    async def delete(self, key: str) -> bool:
        return self._values.pop(key, None) is not None

    async def add(self, key: str, amount: float, ttl_seconds: float | None = None) -> float:
        current = self._live(key)
        if current is None:
            total, expires = float(amount), self._expiry(ttl_seconds)
        else:
            total = _number(current) + amount
            expires = self._values[key][1]
        self._values[key] = (total, expires)
        return total

    async def reserve(
        self, key: str, amount: float, limit: float, window_seconds: float
    ) -> Reservation:
        now = self._clock()
        window = int(now // window_seconds)
        slot = f"{key}:{window}"
        used = _number(self._live(slot) or 0.0)
        reset = (window + 1) * window_seconds - now
        if used + amount > limit and amount > 0:
            return Reservation(False, used, limit, reset)
        total = await self.add(slot, amount, window_seconds)
        return Reservation(True, total, limit, reset)

    async def keys(self, prefix: str) -> list[str]:
        return [key for key in list(self._values) if key.startswith(prefix) and self._live(key)]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._values.clear()


def _number(value: bytes | float) -> float:
    return value if isinstance(value, float) else float(value.decode() or 0)
