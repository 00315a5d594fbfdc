"""The state stores, each against the same contract: the in-process store, its SQLite file,
and Redis (a real redis-server); outages are quick errors, never hangs, and they end."""

from __future__ import annotations

import asyncio
import time

import pytest

from modelway.config import StateSettings
from modelway.state import Ask, Change, MemoryStore, StateUnavailable
from modelway.statesqlite import SQLiteStore
from modelway.statestore import GuardedStore, guarded
from tests.redis_server import redis_server  # noqa: F401


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        yield SQLiteStore(tmp_path)
    else:
        server = request.getfixturevalue("redis_server")
        from modelway.stateredis import RedisStore

        # A long timeout: these tests are about what the store does, not how fast (a busy
        # runner can take longer than the default 0.25 s to open the first connections).
        yield RedisStore(server.url, timeout_seconds=10, prefix=f"t{time.monotonic_ns()}:")


def run(coroutine):
    return asyncio.run(coroutine)


def test_values_counters_and_listing(store):
    # What must be listed lives long; what must expire is only checked once it surely has.
    # (Listing a 50 ms value later, after a round trip or two, was a race: on a busy runner
    # Redis had expired it before `keys` asked.)
    async def scenario():
        await store.set("responses:a", b"one")
        await store.set("responses:b", b"two", ttl_seconds=60)
        await store.set("responses:c", b"three", ttl_seconds=0.05)
        assert await store.get("responses:a") == b"one"
        assert await store.add("spend:x", 1.5) == 1.5
        assert await store.add("spend:x", 2) == 3.5
        assert await store.get("spend:x") == b"3.5"  # read back: the batched settle is done
        listed = await store.keys("responses:")
        assert {"responses:a", "responses:b"} <= set(listed) <= {
            "responses:a", "responses:b", "responses:c"
        }
        await asyncio.sleep(0.1)
        assert await store.get("responses:c") is None
        assert sorted(await store.keys("responses:")) == ["responses:a", "responses:b"]
        assert await store.delete("responses:a") is True
        assert await store.delete("responses:a") is False
        assert await store.ping()
        await store.close()

    run(scenario())


def test_delete_if_removes_only_the_value_it_was_given(store):
    async def scenario():
        await store.set("health:ejection:a", b"first")
        assert await store.delete_if("health:ejection:a", b"other") is False
        assert await store.get("health:ejection:a") == b"first"  # someone else's: kept
        assert await store.delete_if("health:ejection:a", b"first") is True
        assert await store.get("health:ejection:a") is None
        assert await store.delete_if("health:ejection:a", b"first") is False
        assert await store.delete_if("none", b"") is False
        await store.set("health:ejection:b", b"gone", ttl_seconds=0.05)
        await asyncio.sleep(0.1)
        assert await store.delete_if("health:ejection:b", b"gone") is False  # expired
        guarded = GuardedStore(store, 0.0, shared=False)
        await guarded.set("k", b"v")
        assert await guarded.delete_if("k", b"w") is False
        assert await guarded.delete_if("k", b"v") is True
        assert await store.keys("health:") == []
        await store.close()

    run(scenario())


def test_sqlite_keeps_a_conditional_delete_across_a_restart(tmp_path):
    async def first():
        store = SQLiteStore(tmp_path)
        await store.set("kept", b"one")
        await store.set("gone", b"two")
        await store.flush()
        assert not await store.delete_if("kept", b"other")
        assert await store.delete_if("gone", b"two")
        await store.close()

    async def second():
        store = SQLiteStore(tmp_path)
        assert await store.get_many(["kept", "gone"]) == [b"one", None]
        await store.close()

    run(first())
    run(second())


def test_many_values_and_hashes_of_numbers(store):
    async def scenario():
        await store.set("health:a", b"one")
        assert await store.get_many(["health:a", "health:none"]) == [b"one", None]
        assert await store.get_many([]) == []
        await store.merge_fields("stats", {"n": 2, "sum": 1.5}, {"max": 3}, {"since": 10})
        await store.merge_fields("stats", {"n": 1}, {"max": 2, "top": 1}, {"since": 20})
        await store.merge_fields("stats", {}, {"max": 7}, {"since": 5})
        assert await store.fields("stats") == {
            "n": 3, "sum": 1.5, "max": 7, "top": 1, "since": 5
        }
        assert await store.fields("none") == {}
        assert await store.delete("stats") is True
        assert await store.fields("stats") == {}
        await store.close()

    run(scenario())


def test_reserve_all_is_all_or_nothing_and_settles_its_window(store):
    async def scenario():
        first = await store.reserve_all([Ask("r", 6, 10, 60), Ask("t", 1, 2, 60)])
        assert [r.granted for r in first] == [True, True]
        assert first[0].used == 6 and first[0].remaining == 4
        assert 59 <= first[0].reset_seconds <= 60
        refused = await store.reserve_all([Ask("r", 5, 10, 60), Ask("t", 1, 2, 60)])
        assert [r.granted for r in refused] == [False, True]
        again = await store.reserve_all([Ask("r", 4, 10, 60), Ask("t", 1, 2, 60)])
        assert [r.used for r in again] == [10, 2]  # nothing was taken by the refusal
        await store.settle([Change("r", -7, first[0].window)])
        after = await store.reserve("r", 0, 10, 60)
        assert after.used == 3
        await store.settle([Change("r", 100, "another-window")])  # an ended window: ignored
        assert (await store.reserve("r", 0, 10, 60)).used == 3
        await store.close()

    run(scenario())


def test_a_window_ends_and_a_new_one_starts(store):
    async def scenario():
        old = await store.reserve("w", 5, 5, 0.05)
        assert old.granted and not (await store.reserve("w", 1, 5, 0.05)).granted
        await asyncio.sleep(0.1)
        new = await store.reserve("w", 1, 5, 0.05)
        assert new.granted and new.used == 1 and new.window != old.window
        await store.settle([Change("w", -5, old.window)])  # the old window: no effect
        assert (await store.reserve("w", 0, 5, 0.05)).used == 1
        await store.close()

    run(scenario())


def test_sqlite_keeps_values_and_counters_across_a_restart(tmp_path):
    async def first():
        store = SQLiteStore(tmp_path)
        await store.set("keys:h:abc", b"record")
        await store.add("spend:day", 0.25)
        await store.reserve("limits:k", 3, 10, 60)
        await store.close()

    async def second():
        store = SQLiteStore(tmp_path)
        assert await store.get("keys:h:abc") == b"record"
        assert await store.add("spend:day", 0.25) == 0.5
        assert (await store.reserve("limits:k", 0, 10, 60)).used == 0  # windows are not kept
        await store.close()

    run(first())
    run(second())


def test_redis_counter_adds_from_two_processes_each_see_their_own_total(redis_server):  # noqa: F811
    """`add` returns the value its own increment made: two stores (two processes) adding at
    once get every total from 1 to 100 once, none twice; a ttl is set on the first add."""
    from modelway.stateredis import RedisStore

    async def scenario():
        prefix = f"t{time.monotonic_ns()}:"
        one, two = (RedisStore(redis_server.url, timeout_seconds=10, prefix=prefix)
                    for _ in range(2))  # 100 calls open their connections at once
        totals = await asyncio.gather(
            *(store.add("spend:n", 1, ttl_seconds=60) for _ in range(50) for store in (one, two))
        )
        assert sorted(totals) == [float(n) for n in range(1, 101)]
        assert 0 < await one._client.pttl(prefix + "spend:n") <= 60_000
        await one.close()
        await two.close()

    run(scenario())


def test_redis_sends_one_batch_at_a_time_and_what_comes_meanwhile_goes_in_the_next(
    redis_server,  # noqa: F811
):
    """While a batch is under way, reservations and settlements of the following event-loop
    turns wait and then go together: one round trip for all of them, each answered its own."""
    from modelway.stateredis import RedisStore

    async def scenario():
        store = RedisStore(redis_server.url, timeout_seconds=30, prefix=f"t{time.monotonic_ns()}:")
        script, gate, sent = store._batch, asyncio.Event(), []

        async def held(keys, args):  # the real script, the first call held until the gate opens
            sent.append(args)
            if len(sent) == 1:
                await gate.wait()
            return await script(keys=keys, args=args)

        store._batch = held
        first = asyncio.ensure_future(store.reserve_all([Ask("w", 1, 100, 60)]))
        while not sent:
            await asyncio.sleep(0)
        later = []
        for _ in range(10):  # one per event-loop turn
            later.append(asyncio.ensure_future(store.reserve_all([Ask("w", 1, 100, 60)])))
            await asyncio.sleep(0)
        settled = asyncio.ensure_future(store.settle([Change("spent", 2.5)]))
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(sent) == 1
        gate.set()
        found = [(await f)[0] for f in [first, *later]]
        await settled
        assert len(sent) == 2 and sent[1][1].startswith("1 ")  # 10 groups of one ask
        assert sorted(r.used for r in found) == [float(n) for n in range(1, 12)]
        assert float(await store._client.get(store.prefix + "spent")) == 2.5
        await store.close()

    run(scenario())


def test_redis_down_is_a_quick_error_then_recovers(redis_server):  # noqa: F811
    settings = StateSettings(store="redis", url=redis_server.url, retry_seconds=0.2)

    async def scenario():
        store = guarded(settings)
        await store.set("k", b"v")
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(StateUnavailable):
            await store.get("k")
        with pytest.raises(StateUnavailable):  # fails fast during the pause
            await store.reserve_all([Ask("x", 1, 5, 60)])
        assert time.monotonic() - started < 2
        assert await store.ping() is False
        redis_server.start()
        await asyncio.sleep(0.3)
        assert await store.ping() is True
        assert await store.get("k") is None  # a fresh redis-server (no persistence)
        await store.close()

    run(scenario())


def test_redis_unreachable_at_start_is_unavailable_not_a_hang(tmp_path):
    pytest.importorskip("redis")
    settings = StateSettings(store="redis", url=f"unix://{tmp_path}/none.sock")

    async def scenario():
        store = guarded(settings)
        assert isinstance(store, GuardedStore)
        with pytest.raises(StateUnavailable):
            await store.get("k")
        await store.close()

    run(scenario())


def test_redis_needs_a_url():
    with pytest.raises(ValueError, match="needs a url"):
        StateSettings(store="redis")
