"""Reservations against the shared store, with the fallback of a store that is down.

`Reserver.take` reserves a request's asks in one atomic call. When the store cannot be
reached, a limit that fails closed refuses (503 in the client's shape); one that fails open
is counted in this process instead (and the outage is logged once), so the gateway keeps
serving with per-worker limits until the store is back. Settlement goes where the amount
was taken, batched (`modelway.plugins.governance.settle`). An in-process store answers
without awaiting (`take_now`, and settlements applied at once): no task, no event-loop turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelway import hookimpl, tokens
from modelway.plugins.governance.errors import store_down
from modelway.plugins.governance.settle import Settler
from modelway.state import Ask, Change, MemoryStore, Reservation, StateUnavailable
from modelway.statestore import GuardedStore

if TYPE_CHECKING:
    from modelway.runtime import Gateway

logger = logging.getLogger("modelway.governance")


@dataclass(slots=True)
class Held:
    """One amount taken for a request, to settle when it ends."""

    ask: Ask
    reservation: Reservation
    local: bool
    """Taken from this process's fallback (the store was down)."""
    tokens: bool = False
    attempt: object | None = None
    """The attempt it was taken for (per-backend limits), or None for the request."""


class Reserver:
    """Takes and settles amounts in the store (or, failing open, in this process)."""

    def __init__(self, what: str, store: Callable[[], GuardedStore]) -> None:
        self.what = what
        self.fallback = MemoryStore()
        self._resolve = store
        self._resolved: GuardedStore | None = None
        self.shared = Settler(self._store)
        self._degraded = False

    def _store(self) -> GuardedStore:
        """The gateway's store, looked up on first use (then kept: it outlives reloads)."""
        store = self._resolved
        if store is None:
            store = self._resolved = self._resolve()
        return store

    def take_now(self, asks: Sequence[Ask]) -> list[Reservation] | None:
        """The reservations at once when the store is in this process, else None (`take`)."""
        immediate = self._store().immediate
        return None if immediate is None else immediate.reserve_now(asks)

    async def take(self, asks: Sequence[Ask], closed: bool) -> tuple[list[Reservation], bool]:
        """The reservations, and whether they were taken locally (the store is down)."""
        if not asks:
            return [], False
        try:
            found = await self._store().reserve_all(asks)
        except StateUnavailable as exc:
            if closed:
                raise store_down(self.what) from None
            if not self._degraded:
                self._degraded = True
                logger.error("%s: the state store is down, counting in this process: %s",
                             self.what, exc)
            return await self.fallback.reserve_all(asks), True
        if self._degraded:
            self._degraded = False
            logger.warning("%s: the state store is back", self.what)
        return found, False

    def settle(self, held: Held, amount: float) -> None:
        """Change what `held` took to `amount` (its real use)."""
        delta = amount - held.ask.amount
        if delta:
            change = Change(held.ask.key, delta, held.reservation.window)
            if held.local:
                self.fallback.settle_now([change])
            else:
                self.count([change])

    def count(self, changes: list[Change]) -> None:
        """Add to the store's counters (spend): at once in process, else batched."""
        immediate = self._store().immediate
        if immediate is not None:
            immediate.settle_now(changes)
        else:
            self.shared.add(changes)

    async def drain(self) -> None:
        await self.shared.drain()


class ReservingPlugin:
    """What `limits` and `budgets` share: their reserver (made at configure) and the
    tokenizer loaded at start, before the first request needs it (half a second, once)."""

    def __init__(self) -> None:
        self.reserver: Reserver | None = None

    @hookimpl
    def modelway_startup(self, gateway: Gateway) -> None:
        tokens.preload()


def refused(held: list[Held]) -> Held | None:
    """The first reservation that did not fit (nothing was taken then)."""
    return next((h for h in held if not h.reservation.granted), None)
