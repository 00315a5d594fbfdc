"""Shared state behind one small interface: what several gateway workers or instances share.

Counters, budgets, created keys, backend health, A/B statistics and stored responses all go
through a `StateStore`. The default keeps everything in this process (`MemoryStore`, with an
optional SQLite file for what must survive a restart: `modelway.statesqlite`); Redis serves
several workers and instances (`modelway.stateredis`). The `state:` section of the
configuration chooses one (`modelway.statestore.open_store`). Keys are plain strings,
namespaced by their user (`limits:`, `responses:` ...); values are bytes. Every method is a
coroutine and must never block the event loop; a store that cannot be reached raises
`StateUnavailable`, never hangs.

Reservations work on windows: a window starts with the first reservation of its key and
lasts `window_seconds`; its id is given back, so that settling a request later changes that
window and never the next one. `reserve_all` is all-or-nothing and atomic: limits shared by
many workers cannot be overshot by requests racing each other, by more than what requests in
flight reserved.

Hashes of numbers (`merge_fields`, `fields`) hold aggregates many processes add to: the A/B
statistics merge their deltas into one hash, a sum, a maximum or a minimum per field.

`delete_if` is a compare and delete: a process removes a record only while it is still the
one it saw (a shared ejection that another process may have replaced meanwhile).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable


class Reservation(NamedTuple):
    """The outcome of a reservation: granted or not, what is used, when the window resets.

    `Reservation`, `Ask` and `Change` are named tuples: immutable, and made for every request
    at a fraction of a frozen dataclass's cost."""

    granted: bool
    used: float
    limit: float
    reset_seconds: float
    window: str = ""
    """The id of the window the amount was taken from (for `settle`)."""

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.used)


class Ask(NamedTuple):
    """Take `amount` from the window of `key` (at most `limit` per `window_seconds`)."""

    key: str
    amount: float
    limit: float
    window_seconds: float


class Change(NamedTuple):
    """Add `amount` (maybe negative) to the reservation window `window` of `key` (nothing
    when that window has ended), or, with `window` None, to the plain counter `key` (created
    with `ttl_seconds`)."""

    key: str
    amount: float
    window: str | None = None
    ttl_seconds: float | None = None


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

    async def delete_if(self, key: str, expected: bytes) -> bool:
        """Remove the value `key` only if it is still `expected`, atomically (compare and
        delete); True if it was removed. A process that restores what it saw must not remove
        what another process wrote since."""
        ...

    async def add(self, key: str, amount: float, ttl_seconds: float | None = None) -> float:
        """Add to a numeric counter (created at 0) and return its new value, atomically.
        `ttl_seconds` is set when the counter is created."""
        ...

    async def reserve(
        self, key: str, amount: float, limit: float, window_seconds: float
    ) -> Reservation:
        """Take `amount` from the window of `key` holding at most `limit`, atomically;
        nothing is taken when it would go over (granted False)."""
        ...

    async def reserve_all(self, asks: Sequence[Ask]) -> list[Reservation]:
        """Every ask, atomically and all or nothing: when one would go over, nothing is
        taken at all, and the answers say which would (granted False); check them all."""
        ...

    async def settle(self, changes: Sequence[Change]) -> None:
        """Apply changes (a reservation's real amount, spend counters), each atomically."""
        ...

    async def keys(self, prefix: str) -> list[str]:
        """The keys that start with `prefix` (for listing; not for the hot path)."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of several keys in one round trip (None where a key is missing)."""
        ...

    async def merge_fields(
        self,
        key: str,
        sums: Mapping[str, float],
        maxima: Mapping[str, float] | None = None,
        minima: Mapping[str, float] | None = None,
    ) -> None:
        """Merge into the hash of numbers `key`, atomically: add `sums` to their fields, keep
        the larger of each of `maxima` and the smaller of each of `minima`."""
        ...

    async def fields(self, key: str) -> dict[str, float]:
        """Every field of the hash of numbers `key` (empty when there is none)."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers (readiness)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Window:
    id: str
    used: float
    ends: float


class MemoryStore:
    """The in-process default: dicts with expiry. Nothing to install; one process only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[bytes | float, float | None]] = {}
        self._windows: dict[str, _Window] = {}
        self._hashes: dict[str, dict[str, float]] = {}
        self._ids = itertools.count(1)

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
        found = self._hashes.pop(key, None) is not None
        return self._values.pop(key, None) is not None or found

    async def delete_if(self, key: str, expected: bytes) -> bool:
        return self._delete_if(key, expected)

    def _delete_if(self, key: str, expected: bytes) -> bool:
        # No await between the comparison and the deletion: atomic on the event loop.
        if self._live(key) != expected:
            return False
        del self._values[key]
        return True

    async def add(self, key: str, amount: float, ttl_seconds: float | None = None) -> float:
        return self._add(key, amount, ttl_seconds)

    def _add(self, key: str, amount: float, ttl_seconds: float | None) -> float:
        current = self._live(key)
        if current is None:
            total, expires = float(amount), self._expiry(ttl_seconds)
        else:
            total = _number(current) + amount
            expires = self._values[key][1]
        self._values[key] = (total, expires)
        return total

    def _window(self, key: str, window_seconds: float, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None or window.ends <= now:
            window = _Window(str(next(self._ids)), 0.0, now + window_seconds)
            self._windows[key] = window
        return window

    async def reserve(
        self, key: str, amount: float, limit: float, window_seconds: float
    ) -> Reservation:
        return (await self.reserve_all([Ask(key, amount, limit, window_seconds)]))[0]

    async def reserve_all(self, asks: Sequence[Ask]) -> list[Reservation]:
        return self.reserve_now(asks)

    def reserve_now(self, asks: Sequence[Ask]) -> list[Reservation]:
        """`reserve_all` without awaiting: this store answers in this process, at once."""
        now = self._clock()
        windows = [self._window(a.key, a.window_seconds, now) for a in asks]
        pairs = list(zip(asks, windows, strict=True))
        fits = [a.amount <= 0 or w.used + a.amount <= a.limit for a, w in pairs]
        if all(fits):
            for ask, window in pairs:
                window.used += ask.amount
        return [Reservation(fit, w.used, a.limit, w.ends - now, w.id)
                for (a, w), fit in zip(pairs, fits, strict=True)]

    async def settle(self, changes: Sequence[Change]) -> None:
        self.settle_now(changes)

    def settle_now(self, changes: Sequence[Change]) -> None:
        """`settle` without awaiting."""
        now = self._clock()
        for change in changes:
            if change.window is None:
                self._add(change.key, change.amount, change.ttl_seconds)
                continue
            window = self._windows.get(change.key)
            if window is not None and window.id == change.window and window.ends > now:
                window.used += change.amount

    async def keys(self, prefix: str) -> list[str]:
        return [key for key in list(self._values) if key.startswith(prefix) and self._live(key)]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

    async def merge_fields(
        self,
        key: str,
        sums: Mapping[str, float],
        maxima: Mapping[str, float] | None = None,
        minima: Mapping[str, float] | None = None,
    ) -> None:
        found = self._hashes.setdefault(key, {})
        for name, amount in sums.items():
            found[name] = found.get(name, 0.0) + amount
        for name, value in (maxima or {}).items():
            found[name] = max(found.get(name, value), value)
        for name, value in (minima or {}).items():
            found[name] = min(found.get(name, value), value)

    async def fields(self, key: str) -> dict[str, float]:
        return dict(self._hashes.get(key, {}))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._values.clear()
        self._windows.clear()
        self._hashes.clear()


def _number(value: bytes | float) -> float:
    return value if isinstance(value, float) else float(value.decode() or 0)
