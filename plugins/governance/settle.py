"""Settlement batched per event-loop turn: the changes of every request that ended in one turn
go to the store in one call (one Redis round trip), off the request's path. A store that is
down loses the batch (logged once per outage): windows expire on their own, and spend
counted in this process's fallback is not sent later."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from modelway.state import Change, StateStore, StateUnavailable

logger = logging.getLogger("modelway.governance")


class Settler:
    """Collects changes and sends them together; `drain` waits for what is under way."""

    def __init__(self, store: Callable[[], StateStore]) -> None:
        self._store = store
        self._pending: list[Change] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self._warned = False

    def add(self, changes: list[Change]) -> None:
        if not changes:
            return
        self._pending.extend(changes)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self._flush)
            except RuntimeError:  # no loop (a unit test): nothing is sent
                self._scheduled = False

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Change]) -> None:
        try:
            await self._store().settle(batch)
            self._warned = False
        except StateUnavailable as exc:
            if not self._warned:
                self._warned = True
                logger.warning("settlement of %d change(s) lost: %s", len(batch), exc)

    async def drain(self) -> None:
        if self._pending:
            self._flush()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
