"""Shared ejections racing each other (`healthsync`): a restoration that must not delete a newer
ejection, and a re-published ejection that must stay the same record.

Two boards (two processes, as far as the store can tell) on one store: the in-process store, its
SQLite file and a real redis-server. The interleavings are fixed by the test: each step is one
board's `sync`, `publish` or `read`, awaited before the next, and the clock moves only when the
test says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from modelway.context import AttemptOutcome
from modelway.plugins.traffic.healthsync import PREFIX, HealthSync, decode
from modelway.state import MemoryStore, StateStore
from modelway.statesqlite import SQLiteStore
from modelway.testing.clock import FakeClock
from tests.redis_server import redis_server  # noqa: F401
from tests.test_health_shared import WALL, boards

REFUSED = AttemptOutcome(False, None, "connect", True)
OK = AttemptOutcome(True, 200)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request, tmp_path) -> Iterator[Callable[[], StateStore]]:
    """A factory: the store is made inside the test's event loop (Redis's client needs it)."""
    if request.param == "memory":
        yield MemoryStore
    elif request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path)
    else:
        server = request.getfixturevalue("redis_server")
        from modelway.stateredis import RedisStore

        yield lambda: RedisStore(server.url, timeout_seconds=10, prefix=f"t{time.monotonic_ns()}:")


def two_boards(inner: StateStore) -> tuple[HealthSync, HealthSync, FakeClock]:
    return boards(inner, ["a"])


def run(make_store: Callable[[], StateStore],
        scenario: Callable[[HealthSync, HealthSync, FakeClock], Awaitable[None]]) -> None:
    async def go() -> None:
        inner = make_store()
        one, two, clock = two_boards(inner)
        try:
            await scenario(one, two, clock)
        finally:
            await inner.close()

    asyncio.run(go())


async def stored_id(sync: HealthSync) -> str | None:
    value = await sync.store.get(PREFIX + "a")
    found = None if value is None else decode(value, WALL)
    return None if found is None else found.id


def test_a_restoration_keeps_the_newer_ejection_another_process_wrote_meanwhile(make_store):
    async def scenario(one: HealthSync, two: HealthSync, clock: FakeClock) -> None:
        for _ in range(2):
            one.board.record("a", REFUSED)
        await one.sync()
        await two.sync()  # two adopts one's ejection
        first = one.board.entry("a").ejection_id  # type: ignore[union-attr]
        clock.advance(10)  # half-open on both boards: each probes once
        assert two.board.available("a") and one.board.available("a")
        two.board.record("a", OK)  # two's probe answers: restored here, not published yet
        one.board.record("a", REFUSED)  # one's probe fails: a new ejection...
        await one.sync()  # ...stored first
        newer = one.board.entry("a").ejection_id  # type: ignore[union-attr]
        assert newer != first and await stored_id(one) == newer
        await two.sync()  # two's restoration is of `first`: it must not delete `newer`
        assert await stored_id(two) == newer
        assert two.board.entry("a").ejection_id == newer  # type: ignore[union-attr]
        await one.sync()
        assert (one.board.state("a"), two.board.state("a")) == ("ejected", "ejected")
        assert one.board.snapshot()["backends"]["a"]["cooldown_seconds"] == 20
        clock.advance(20)
        assert two.board.available("a")
        two.board.record("a", OK)  # now a good probe of the newer ejection: gone everywhere
        await two.sync()
        await one.sync()
        assert await stored_id(one) is None
        assert (one.board.state("a"), two.board.state("a")) == ("healthy", "healthy")

    run(make_store, scenario)


def test_a_re_published_ejection_is_still_the_one_a_restoration_deletes(make_store):
    async def scenario(one: HealthSync, two: HealthSync, clock: FakeClock) -> None:
        for _ in range(2):
            one.board.record("a", REFUSED)
        await one.sync()
        await two.sync()
        clock.advance(3)
        # The wall clock and the monotonic one are read apart (and NTP steps the wall): a
        # record encoded again would say its times a little differently.
        one.wall = lambda: WALL + clock() + 0.001
        one.board.changed.add("a")  # publishing again (after a failure: idempotent)
        await one.publish()
        clock.advance(7)
        assert two.board.available("a")
        two.board.record("a", OK)
        await two.sync()  # the same ejection, though published twice: deleted
        assert await stored_id(two) is None
        await one.sync()
        assert (one.board.state("a"), two.board.state("a")) == ("healthy", "healthy")

    run(make_store, scenario)


def test_restoring_an_ejection_never_stored_deletes_nothing(make_store):
    async def scenario(one: HealthSync, two: HealthSync, clock: FakeClock) -> None:
        for _ in range(2):
            two.board.record("a", REFUSED)
        await two.sync()  # two's ejection is stored; one has not read it yet
        for _ in range(2):
            one.board.record("a", REFUSED)
        one.board.record("a", OK)  # one ejected and restored before it published anything
        await one.sync()
        assert await stored_id(one) == two.board.entry("a").ejection_id  # type: ignore[union-attr]
        assert one.board.state("a") == "ejected"  # and it adopted two's at its read

    run(make_store, scenario)
