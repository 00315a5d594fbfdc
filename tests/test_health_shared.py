"""Ejections shared between processes (`healthsync`): two boards on one store with a clock the
test moves, then two real gateway processes on a real redis-server.

Through the processes, real upstreams on 127.0.0.1 fail and recover, the official openai SDK
is the client, and `GET /modelway/health` of each process shows what its board knows: a
backend failing through instance A is ejected, instance B routes around it without having seen
a failure, a good answer through B restores it on both, and with Redis stopped each instance
keeps serving on its own board and shares what it decided once Redis is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import pytest

from modelway.context import AttemptOutcome
from modelway.plugins.traffic.health import HealthBoard, Settings
from modelway.plugins.traffic.healthsync import PREFIX, HealthSync, decode
from modelway.state import MemoryStore, StateStore, StateUnavailable
from modelway.statestore import GuardedStore
from modelway.testing.clock import FakeClock
from modelway.testing.fake_openai import openai_behavior
from modelway.testing.gateway import write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer, status_reply
from tests.governance_kit import ADMIN_KEY, admin
from tests.processes import GatewayProcess, wait_for
from tests.redis_server import redis_server  # noqa: F401

REFUSED = AttemptOutcome(False, None, "connect", True)
OK = AttemptOutcome(True, 200)
WALL = 1.7e9


# ----------------------------------------------------------------------------- two boards


class FlakyStore(MemoryStore):
    """A memory store the test can take down (every call raises `StateUnavailable`)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StateUnavailable("down for the test")

    async def get_many(self, keys):  # type: ignore[no-untyped-def]
        self._check()
        return await super().get_many(keys)

    async def set(self, key, value, ttl_seconds=None):  # type: ignore[no-untyped-def]
        self._check()
        await super().set(key, value, ttl_seconds)

    async def delete(self, key):  # type: ignore[no-untyped-def]
        self._check()
        return await super().delete(key)

    async def delete_if(self, key, expected):  # type: ignore[no-untyped-def]
        self._check()
        return await super().delete_if(key, expected)


def boards(inner: StateStore, backends: list[str]) -> tuple[HealthSync, HealthSync, FakeClock]:
    """Two processes' boards on one store; one clock for both, the wall clock beside it."""
    clock = FakeClock()
    store = GuardedStore(inner, 0.0, shared=True)
    settings = Settings(failures_to_eject=2, cooldown_seconds=10, max_cooldown_seconds=60)
    syncs = []
    for name in ("one", "two"):
        board = HealthBoard(settings, clock)
        board.process = name
        sync = HealthSync(board, store, wall=lambda: WALL + clock())
        sync.watch(backends)
        syncs.append(sync)
    return syncs[0], syncs[1], clock


def pair() -> tuple[HealthSync, HealthSync, FakeClock, FlakyStore]:
    inner = FlakyStore()
    return (*boards(inner, ["a", "b"]), inner)


def eject_a(sync: HealthSync) -> None:
    """Failures enough (`failures_to_eject`: 2) for `sync`'s board to eject backend a."""
    for _ in range(2):
        sync.board.record("a", REFUSED)


def run(*calls: Callable[[], Any]) -> None:
    async def go() -> None:
        for call in calls:
            await call()

    asyncio.run(go())


def test_an_ejection_is_adopted_with_the_time_left_and_its_origin():
    one, two, clock, _ = pair()
    eject_a(one)
    clock.advance(4)
    run(one.sync, two.sync)
    view = two.board.snapshot()["backends"]["a"]
    assert view["state"] == "ejected"
    assert view["seconds_left"] == 6
    assert view["ejected_by"] == "one"
    assert view["consecutive_failures"] == 0
    assert "2 consecutive failures" in view["reason"]
    assert two.board.ejections("a") == 0  # decided elsewhere: counted by the process that did
    assert two.board.state("b") == "healthy"


def test_an_adopted_ejection_goes_half_open_and_a_good_probe_restores_everywhere():
    one, two, clock, _ = pair()
    eject_a(one)
    run(one.sync, two.sync)
    clock.advance(10)
    assert two.board.available("a")  # the probe slot, once
    assert not two.board.available("a")
    two.board.record("a", OK)
    run(two.sync, one.sync)
    assert (one.board.state("a"), two.board.state("a")) == ("healthy", "healthy")


def test_a_failed_probe_elsewhere_doubles_the_cooldown_for_everyone():
    one, two, clock, _ = pair()
    eject_a(one)
    run(one.sync, two.sync)
    clock.advance(10)
    assert two.board.available("a")
    two.board.record("a", REFUSED)
    run(two.sync, one.sync)
    view = one.board.snapshot()["backends"]["a"]
    assert (view["state"], view["cooldown_seconds"], view["ejected_by"]) == ("ejected", 20, "two")


def test_a_late_retry_after_lengthens_the_ejection_for_everyone():
    one, two, clock, _ = pair()
    eject_a(one)
    run(one.sync, two.sync)
    clock.advance(4)
    # An answer to an attempt two sent before it adopted the ejection: a 429 asking for 40 s.
    two.board.record("a", AttemptOutcome(False, 429, "http_429", True, 40.0))
    assert two.board.changed == {"a"}
    run(two.sync, one.sync)
    for sync in (one, two):
        view = sync.board.snapshot()["backends"]["a"]
        assert (view["state"], view["seconds_left"], view["ejected_by"]) == ("ejected", 40, "two")
    clock.advance(39)
    assert not one.board.available("a")
    clock.advance(1)
    assert one.board.available("a")  # the probe, after the longer pause
    one.board.record("a", OK)
    run(one.sync, two.sync)  # the restoration deletes the lengthened record, for both
    assert (one.board.state("a"), two.board.state("a")) == ("healthy", "healthy")


def test_a_change_not_sent_yet_wins_over_what_is_read():
    one, two, _, _ = pair()
    eject_a(one)
    run(one.sync)
    two.board.record("a", OK)  # nothing to restore locally: nothing changed, nothing sent
    run(two.sync)
    assert two.board.state("a") == "ejected"
    two.board.record("a", OK)  # now restored here, not sent yet: the record must not undo it
    run(two.read)
    assert two.board.state("a") == "healthy"
    run(two.sync, one.sync)
    assert one.board.state("a") == "healthy"


def test_store_down_the_board_serves_alone_and_shares_its_decision_later():
    one, two, _, inner = pair()
    inner.down = True
    eject_a(one)
    with pytest.raises(StateUnavailable):
        run(one.sync)
    assert one.board.state("a") == "ejected" and one.board.changed == {"a"}
    inner.down = False
    run(one.sync, two.sync)
    assert two.board.state("a") == "ejected"


def test_a_record_that_is_not_an_ejection_is_ignored():
    assert decode(b"not json", WALL) is None
    assert decode(b'{"id": 1}', WALL) is None
    one, _, _, _ = pair()
    run(lambda: one.store.set(PREFIX + "a", b"[]"), one.sync)
    assert one.board.state("a") == "healthy"


def test_a_memory_store_shares_nothing(tmp_path):
    from modelway.runtime import load_gateway
    from modelway.services import HealthService

    path = write_config(tmp_path, """
        plugins: {mock: null, health: null}
        backends: {m: {provider: mock}}
        routes: [{match: {model: m}, backend: m}]
    """)  # fmt: skip
    gateway = load_gateway(str(path))
    asyncio.run(_startup(gateway))
    assert gateway.services.get(HealthSync) is None
    board = gateway.services.get(HealthService)
    assert board is not None and board.snapshot()["shared"] is False


async def _startup(gateway: Any) -> None:
    gateway.hooks.startup(gateway)


# ----------------------------------------------------------------------------- two processes


class Switch:
    """An upstream behavior the test flips between named replies by setting `mode`."""

    def __init__(self, **replies: Callable[[Received], Reply]) -> None:
        self.replies = replies
        self.mode = next(iter(replies))

    def __call__(self, received: Received) -> Reply:
        return self.replies[self.mode](received)


def config(tmp_path, bad: UpstreamServer, good: UpstreamServer, redis_url: str):
    return write_config(tmp_path, f"""
        gateway: {{admin_keys: ["{ADMIN_KEY}"], shutdown_grace_seconds: 2}}
        state: {{store: redis, url: "{redis_url}", retry_seconds: 0.2, timeout_seconds: 0.5}}
        plugins:
          openai: null
          admin_api: null
          access_log: {{enabled: false}}
          health: {{failures_to_eject: 3, cooldown_seconds: 300, max_cooldown_seconds: 600,
                    sync_seconds: 0.2}}
        backends:
          bad: {{provider: openai, base_url: "{bad.url}", api_key: sk-gw}}
          good: {{provider: openai, base_url: "{good.url}", api_key: sk-gw}}
        routes:
          - {{name: chat, match: {{model: chat}}, backend: bad, failover: [[good]]}}
          - {{name: only-bad, match: {{model: only-bad}}, backend: bad}}
    """)  # fmt: skip


def chat(gateway: GatewayProcess, model: str = "chat") -> str:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-client", max_retries=0,
                       timeout=30) as client:  # fmt: skip
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )
    return answer.choices[0].message.content or ""


def backend(gateway: GatewayProcess, name: str = "bad") -> dict[str, Any]:
    status, _, view = admin(gateway.url, "GET", "/modelway/health")
    assert status == 200, view
    return view["backends"].get(name, {"state": "healthy", "consecutive_failures": 0})


def state_becomes(gateway: GatewayProcess, state: str, timeout: float = 20) -> bool:
    return wait_for(lambda: backend(gateway)["state"] == state, timeout) is not None


@pytest.fixture
def upstreams():
    switch = Switch(down=status_reply(503), ok=openai_behavior)
    with UpstreamServer(switch) as bad, UpstreamServer() as good:
        yield switch, bad, good


@pytest.mark.slow
def test_an_ejection_through_one_instance_is_seen_by_the_other_and_both_recover(
    tmp_path, upstreams, redis_server  # noqa: F811
):
    switch, bad, good = upstreams
    path = config(tmp_path, bad, good, redis_server.url)
    with GatewayProcess(path) as one, GatewayProcess(path) as two:
        for _ in range(3):  # failing over to `good`: the client sees answers
            assert chat(one)
        assert backend(one)["state"] == "ejected"
        assert state_becomes(two, "ejected"), two.log()
        seen = backend(two)
        assert seen["consecutive_failures"] == 0
        assert one.process is not None
        assert seen["ejected_by"] == backend(one)["ejected_by"]
        assert seen["ejected_by"].endswith(f":{one.process.pid}")
        tried = len(bad.received)
        for _ in range(5):
            assert chat(two)
        assert len(bad.received) == tried  # routed around, without a failure of its own
        assert backend(two)["consecutive_failures"] == 0
        switch.mode = "ok"
        assert chat(two, "only-bad")  # the only backend is tried anyway, and answers
        assert backend(two)["state"] == "healthy"
        assert state_becomes(one, "healthy"), one.log()
        assert chat(one) and len(bad.received) == tried + 2


@pytest.mark.slow
def test_redis_stopped_each_instance_keeps_its_own_board_and_shares_it_when_back(
    tmp_path, upstreams, redis_server  # noqa: F811
):
    _, bad, good = upstreams
    path = config(tmp_path, bad, good, redis_server.url)
    with GatewayProcess(path) as one, GatewayProcess(path) as two:
        assert chat(one) and backend(two)["state"] == "healthy"
        redis_server.stop()
        for _ in range(3):  # each request has a 30 s timeout: a hung one fails the test
            assert chat(one)
        assert backend(one)["state"] == "ejected"
        assert backend(two)["state"] == "healthy"
        assert chat(two)  # B knows nothing yet: it tries `bad` and fails over itself
        redis_server.start()
        assert state_becomes(two, "ejected"), two.log()
        assert backend(two)["ejected_by"] == backend(one)["ejected_by"]
