"""The embedded store with a memory that survives restarts: `MemoryStore` plus a SQLite file.

Everything is served from memory, as with `MemoryStore`; what must outlive the process
(created keys, spend counters, stored responses: every value and counter, not the rate-limit
windows) is also written to `<directory>/modelway-state.sqlite3` and read back at start. Writes
are batched and made off the event loop every `flush_seconds` (and at close), so a crash loses
at most that much. SQLite comes with Python: nothing to install. One process owns the file:
several workers need Redis (`modelway.stateredis`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from modelway.state import MemoryStore

FILE_NAME = "modelway-state.sqlite3"
_SCHEMA = """
create table if not exists entries (
    key text primary key,
    value blob,
    number real,
    expires real
)
"""


class SQLiteStore(MemoryStore):
    """A `MemoryStore` whose values and counters are kept in a SQLite file too."""

    def __init__(
        self,
        directory: str | Path,
        flush_seconds: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.path = Path(directory).expanduser() / FILE_NAME
        self.flush_seconds = flush_seconds
        self._dirty: set[str] = set()
        self._loaded = False
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ loading and saving

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path)
        connection.execute("pragma journal_mode=wal")
        connection.execute(_SCHEMA)
        return connection

    def _load(self) -> None:
        """Read the file once, on first use (small: keys and spend, not windows)."""
        if self._loaded:
            return
        self._loaded = True
        now_wall, now = time.time(), self._clock()
        with contextlib.closing(self._connect()) as connection:
            rows = connection.execute("select key, value, number, expires from entries")
            for key, value, number, expires in rows:
                if expires is not None and expires <= now_wall:
                    continue
                left = None if expires is None else now + (expires - now_wall)
                self._values[key] = (float(number) if value is None else bytes(value), left)

    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        if self._flusher is None or self._flusher.done():
            with contextlib.suppress(RuntimeError):  # no loop: flushed at close
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_seconds)
        await self.flush()

    async def flush(self) -> None:
        """Write the changed entries now (off the event loop)."""
        rows = self._rows()
        if rows:
            await asyncio.to_thread(self._write, rows)

    def _rows(self) -> list[tuple[str, bytes | None, float | None, float | None]]:
        dirty, self._dirty = self._dirty, set()
        now_wall, now = time.time(), self._clock()
        rows: list[tuple[str, bytes | None, float | None, float | None]] = []
        for key in dirty:
            found = self._values.get(key)
            if found is None:
                rows.append((key, None, None, -1.0))  # deleted
                continue
            value, expires = found
            wall = None if expires is None else now_wall + (expires - now)
            if isinstance(value, float):
                rows.append((key, None, value, wall))
            else:
                rows.append((key, value, None, wall))
        return rows

    def _write(self, rows: list[tuple[str, bytes | None, float | None, float | None]]) -> None:
        with contextlib.closing(self._connect()) as connection, connection:
            for key, value, number, expires in rows:
                if expires == -1.0:
                    connection.execute("delete from entries where key = ?", (key,))
                else:
                    connection.execute(
                        "insert or replace into entries values (?, ?, ?, ?)",
                        (key, value, number, expires),
                    )

    # ------------------------------------------------------------------ the store

    def _live(self, key: str) -> bytes | float | None:
        self._load()
        return super()._live(key)

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        self._load()
        await super().set(key, value, ttl_seconds)
        self._mark(key)

    async def delete(self, key: str) -> bool:
        self._load()
        found = await super().delete(key)
        self._mark(key)
        return found

    def _delete_if(self, key: str, expected: bytes) -> bool:
        found = super()._delete_if(key, expected)  # _live loads the file first
        if found:
            self._mark(key)
        return found

    def _add(self, key: str, amount: float, ttl_seconds: float | None) -> float:
        total = super()._add(key, amount, ttl_seconds)
        self._mark(key)
        return total

    async def keys(self, prefix: str) -> list[str]:
        self._load()
        return await super().keys(prefix)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self._load()
        rows = self._rows()
        if rows:
            self._write(rows)
        await super().close()
