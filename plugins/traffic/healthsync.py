"""Ejections shared between processes: the health board on a shared state store (Redis).

Each process counts its own failures and decides its own ejections (a streak of consecutive
failures cannot be counted across processes without a round trip per attempt). What it decides
is shared: an ejection is a record in the store, `health:ejection:<backend>` (JSON: its id, the
process that decided it, the backoff exponent, the cool-down and the wall-clock time it ends;
it expires `max_cooldown_seconds + probe_timeout_seconds` after the cool-down, so a half-open
backend stays ejected everywhere until it is probed). A restoration deletes the record only if
it is still the one this process's board held (`StateStore.delete_if`, compare and delete):
another process's newer ejection, written meanwhile, stays and is adopted at the next read.
A record is encoded once per ejection and re-published byte for byte, so that comparing the
bytes is comparing the ejection's id. An ejection itself is written over whatever is stored:
two ejections of one backend both say "out of service", and whichever lands last is adopted
by every process (a compare-and-set there would only choose between them).

A background task per process, off the request path, publishes the board's own changes as
soon as they happen, and every `sync_seconds` reads the records of the configured backends in
one round trip (`get_many`): a record it has not seen is adopted (the backend is ejected here
too, for the time left), a record that is gone restores the backend. The router keeps asking
only the local board, so a request pays nothing for the sharing. Each process probes a
half-open backend once; the first good answer anywhere restores it everywhere. When the store
cannot be reached the local board serves alone, what it decided is published once the store is
back, and nothing waits longer than the store's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelway.state import StateUnavailable
from modelway.statestore import GuardedStore, store_of

if TYPE_CHECKING:
    from modelway.plugins.traffic.health import BackendHealth, HealthBoard
    from modelway.runtime import Gateway

logger = logging.getLogger("modelway.health")

PREFIX = "health:ejection:"


@dataclass(frozen=True, slots=True)
class SharedEjection:
    """An ejection as processes share it, in seconds relative to now (clocks differ)."""

    id: str
    by: str
    ejections: int
    cooldown: float
    age: float
    """Seconds since the ejection."""
    left: float
    """Seconds of cool-down left (negative once it is over: half-open)."""
    reason: str


def encode(health: BackendHealth, now: float, wall: float) -> bytes:
    """The record of an ejection (wall-clock times, so that other processes can read it)."""
    assert health.ejected_at is not None and health.ejected_until is not None
    return json.dumps({
        "id": health.ejection_id, "by": health.ejected_by, "ejections": health.ejections,
        "cooldown": health.cooldown, "reason": health.reason,
        "at": wall - (now - health.ejected_at), "until": wall + (health.ejected_until - now),
    }).encode()  # fmt: skip


def decode(data: bytes, wall: float) -> SharedEjection | None:
    """An ejection record read back (None for one that is not one: it is ignored)."""
    try:
        found: Any = json.loads(data)
        return SharedEjection(
            str(found["id"]), str(found["by"]), int(found["ejections"]),
            float(found["cooldown"]), wall - float(found["at"]), float(found["until"]) - wall,
            str(found["reason"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


class HealthSync:
    """Publishes one board's ejections and restorations, and takes in the other processes'."""

    def __init__(
        self, board: HealthBoard, store: GuardedStore, wall: Callable[[], float] = time.time
    ) -> None:
        self.board = board
        self.store = store
        self.wall = wall
        self.backends: tuple[str, ...] = ()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[str, tuple[str, bytes]] = {}
        """Per backend, the id and stored bytes of the ejection its board holds (written here
        or read and adopted): what a restoration may delete."""
        board.shared = True
        board.on_change = self._wake.set

    def watch(self, backends: Sequence[str]) -> None:
        """The backends whose records are read (those of the current configuration)."""
        self.backends = tuple(sorted(set(backends)))

    def start(self) -> None:
        """Run in the background until the store closes (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="modelway-health")
            self.store.on_close(self.stop)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.sync()
                failing = False
            except StateUnavailable:
                pass  # the local board serves meanwhile; the store's guard logged the outage
            except Exception:
                if not failing:  # once per streak: this runs every sync_seconds
                    logger.exception("sharing backend health failed; this process's board serves")
                failing = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.board.settings.sync_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def sync(self) -> None:
        """Publish this process's changes, then take in everyone's (one read)."""
        await self.publish()
        await self.read()

    async def publish(self) -> None:
        """Send the current state of every backend this process changed (idempotent)."""
        pending, self.board.changed = self.board.changed, set()
        for backend in sorted(pending):
            try:
                await self._publish(backend)
            except Exception:
                self.board.changed |= pending  # all again next time (the store was down)
                raise

    async def _publish(self, backend: str) -> None:
        health = self.board.entry(backend)
        if health is None or health.ejected_until is None or health.ejection_id is None:
            seen = self._seen.get(backend)
            if seen is not None:  # else nothing of this board's was ever stored
                await self.store.delete_if(PREFIX + backend, seen[1])
                self._seen.pop(backend, None)
            return
        now = self.board.clock()
        seen = self._seen.get(backend)
        if seen is None or seen[0] != health.ejection_id:
            seen = (health.ejection_id, encode(health, now, self.wall()))
        settings = self.board.settings
        ttl = max(0.0, health.ejected_until - now) + settings.max_cooldown_seconds
        await self.store.set(PREFIX + backend, seen[1], ttl + settings.probe_timeout_seconds)
        self._seen[backend] = seen

    async def read(self) -> None:
        names = self.backends
        if not names:
            return
        values = await self.store.get_many([PREFIX + name for name in names])
        now, wall = self.board.clock(), self.wall()
        for name, value in zip(names, values, strict=True):
            if name in self.board.changed:
                continue  # decided here meanwhile: this process's change goes out next
            ejection = None if value is None else decode(value, wall)
            if ejection is not None and value is not None:
                self.board.adopt(name, ejection, now)
                self._seen[name] = (ejection.id, value)
            elif value is None:
                self.board.release(name)
                self._seen.pop(name, None)


def share(board: HealthBoard, gateway: Gateway) -> None:
    """Share the board's ejections when the gateway's state store is shared (else nothing)."""
    store = store_of(gateway)
    if not store.shared:
        return
    sync = gateway.services.setdefault(HealthSync, lambda: HealthSync(board, store))
    sync.watch(list(gateway.backends))
    sync.start()
