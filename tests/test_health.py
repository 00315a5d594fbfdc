"""Health tracking: the board's rules with an injected clock, then through a real gateway.

Through the gateway, real upstreams on 127.0.0.1 fail (connection refused, 503, 429 with
retry-after, 400) and the official openai SDK is the client; `GET /modelway/health` (plugin
`admin_api`) shows what the board decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from modelway.context import AttemptOutcome
from modelway.errors import ConfigError
from modelway.plugins.traffic.health import HealthBoard, Settings, is_backend_fault
from modelway.runtime import Gateway, load_gateway
from modelway.services import HealthService, Services
from modelway.testing.clock import FakeClock
from modelway.testing.fake_openai import openai_behavior
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer, status_reply

KEY = "sk-backend-health"
MESSAGES = [{"role": "user", "content": "hello"}]
REFUSED = AttemptOutcome(False, None, "connect", True)
OK = AttemptOutcome(True, 200)


# ----------------------------------------------------------------------------- the board


def board(**settings: Any) -> tuple[HealthBoard, FakeClock]:
    clock = FakeClock()
    base = {"failures_to_eject": 3, "cooldown_seconds": 10, "max_cooldown_seconds": 60}
    return HealthBoard(Settings(**{**base, **settings}), clock), clock


def fail(b: HealthBoard, times: int, outcome: AttemptOutcome = REFUSED, name: str = "a") -> None:
    for _ in range(times):
        b.record(name, outcome)


def test_consecutive_failures_eject_at_the_threshold():
    b, _ = board()
    fail(b, 2)
    assert b.available("a") and b.state("a") == "healthy"
    fail(b, 1)
    assert not b.available("a")
    assert b.state("a") == "ejected"
    view = b.snapshot()
    assert view["ejected"] == ["a"]
    assert view["backends"]["a"]["seconds_left"] == 10
    assert "3 consecutive failures, last: connect" in view["backends"]["a"]["reason"]
    assert b.available("other")


def test_a_good_answer_breaks_the_streak():
    b, _ = board()
    fail(b, 2)
    b.record("a", OK)
    fail(b, 2)
    assert b.available("a")
    assert b.snapshot()["backends"]["a"]["consecutive_failures"] == 2


@pytest.mark.parametrize(
    ("outcome", "fault"),
    [
        (AttemptOutcome(False, None, "connect", True), True),
        (AttemptOutcome(False, None, "dns", True), True),
        (AttemptOutcome(False, None, "timeout", True), True),
        (AttemptOutcome(False, None, "slow", True), True),
        (AttemptOutcome(False, 200, "disconnect", False), True),
        (AttemptOutcome(False, 500, "http_500", True), True),
        (AttemptOutcome(False, 503, "http_503", True), True),
        (AttemptOutcome(False, 429, "http_429", True, 5.0), True),
        (AttemptOutcome(False, 400, "http_400", False), False),
        (AttemptOutcome(False, 401, "http_401", False), False),
        (AttemptOutcome(False, 404, "http_404", False), False),
        (AttemptOutcome(False, 413, "http_413", False), False),
        (AttemptOutcome(False, None, "client_closed", False), False),
        (AttemptOutcome(True, 200), False),
    ],
)
def test_which_failures_are_the_backends_fault(outcome, fault):
    assert is_backend_fault(outcome) is fault
    b, _ = board(failures_to_eject=1)
    b.record("a", outcome)
    assert b.available("a") is not fault


def test_client_errors_never_eject_and_count_as_answers():
    b, _ = board()
    fail(b, 2)
    fail(b, 10, AttemptOutcome(False, 400, "http_400", False))
    fail(b, 2)
    assert b.available("a")


def test_half_open_lets_exactly_one_probe_through_and_success_restores():
    b, clock = board()
    fail(b, 3)
    clock.advance(9.9)
    assert not b.available("a")
    clock.advance(0.2)
    assert b.state("a") == "half_open"
    assert b.available("a")  # the probe
    assert b.state("a") == "probing"
    assert not b.available("a")
    assert not b.available("a")
    b.record("a", OK)
    assert b.state("a") == "healthy"
    assert all(b.available("a") for _ in range(5))
    assert b.snapshot()["ejected"] == []


def test_failed_probes_back_off_exponentially_up_to_the_maximum():
    b, clock = board(cooldown_seconds=10, max_cooldown_seconds=35)
    fail(b, 3)
    seen = []
    for _ in range(4):
        seen.append(b.snapshot()["backends"]["a"]["cooldown_seconds"])
        clock.advance(seen[-1])
        assert b.available("a")
        fail(b, 1)  # the probe fails: ejected again at once
        assert b.state("a") == "ejected"
    assert seen == [10, 20, 35, 35]
    assert b.snapshot()["backends"]["a"]["ejections"] == 5


def test_restoration_resets_the_backoff():
    b, clock = board()
    fail(b, 3)
    clock.advance(10)
    assert b.available("a")
    fail(b, 1)
    clock.advance(20)
    assert b.available("a")
    b.record("a", OK)
    fail(b, 3)
    assert b.snapshot()["backends"]["a"]["cooldown_seconds"] == 10


def test_429_retry_after_makes_the_cooldown_at_least_that_long():
    b, clock = board(cooldown_seconds=10, max_cooldown_seconds=60)
    fail(b, 2)
    fail(b, 1, AttemptOutcome(False, 429, "http_429", True, 120.0))
    view = b.snapshot()["backends"]["a"]
    assert view["cooldown_seconds"] == 120
    clock.advance(119)
    assert not b.available("a")
    clock.advance(2)
    assert b.available("a")


def test_retry_after_anywhere_in_the_streak_counts():
    b, _ = board(cooldown_seconds=10)
    fail(b, 1, AttemptOutcome(False, 429, "http_429", True, 45.0))
    fail(b, 2)
    assert b.snapshot()["backends"]["a"]["cooldown_seconds"] == 45


def test_retry_after_from_a_late_answer_extends_an_ejection():
    b, clock = board(cooldown_seconds=10)
    fail(b, 3)
    clock.advance(5)
    fail(b, 1, AttemptOutcome(False, 429, "http_429", True, 30.0))
    view = b.snapshot()["backends"]["a"]
    assert view["seconds_left"] == 30
    clock.advance(20)
    assert not b.available("a")


def test_failures_during_the_cooldown_do_not_extend_it():
    b, clock = board(cooldown_seconds=10)
    fail(b, 3)
    clock.advance(5)
    fail(b, 5)
    assert b.snapshot()["backends"]["a"]["seconds_left"] == 5


def test_an_unreported_probe_frees_its_slot_after_the_probe_timeout():
    b, clock = board(probe_timeout_seconds=15)
    fail(b, 3)
    clock.advance(10)
    assert b.available("a")
    clock.advance(14)
    assert not b.available("a")
    clock.advance(2)
    assert b.available("a")


def test_any_good_answer_restores_even_during_the_cooldown():
    b, _ = board()
    fail(b, 3)
    b.record("a", OK)
    assert b.available("a") and b.state("a") == "healthy"


def test_explicit_now_overrides_the_clock():
    b = HealthBoard(Settings(failures_to_eject=1, cooldown_seconds=5))
    b.record("a", REFUSED, now=100.0)
    assert not b.available("a", now=104.0)
    assert b.available("a", now=105.5)


def test_ejection_and_restoration_are_logged_once_each(caplog):
    b, clock = board()
    with caplog.at_level(logging.INFO, logger="modelway.health"):
        fail(b, 5)
        clock.advance(10)
        assert b.available("a")
        b.record("a", OK)
        b.record("a", OK)
    lines = [r.getMessage() for r in caplog.records if r.name == "modelway.health"]
    assert len(lines) == 2, lines
    assert "'a'" in lines[0] and "ejected for 10.0s" in lines[0] and "connect" in lines[0]
    assert "'a'" in lines[1] and "restored" in lines[1] and "10.0s" in lines[1]


# ----------------------------------------------------------------------------- configuration


def test_settings_are_validated_with_their_yaml_path(tmp_path):
    path = write_config(
        tmp_path,
        """
        plugins:
          health: {cooldown_seconds: 20, max_cooldown_seconds: 5}
        backends: {m: {provider: mock}}
        routes: [{match: {model: m}, backend: m}]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_gateway(str(path))
    assert "plugins.health" in str(info.value)
    assert "max_cooldown_seconds" in str(info.value)


def test_the_board_survives_a_reload_and_takes_the_new_settings(tmp_path):
    text = """
        plugins:
          mock:
          health: {failures_to_eject: %d}
        backends: {m: {provider: mock}}
        routes: [{match: {model: m}, backend: m}]
        """
    services = Services()
    first = load_gateway(str(write_config(tmp_path, text % 3)), services=services)
    health = first.services.get(HealthService)
    fail(health, 3, name="m")
    second = load_gateway(str(write_config(tmp_path, text % 7, "next.yaml")), services=services)
    assert second.services.get(HealthService) is health
    assert health.settings.failures_to_eject == 7
    assert health.state("m") == "ejected"


# ----------------------------------------------------------------------------- the gateway




@contextmanager
def gateway(
    tmp_path: Path, backends: dict[str, str], clock: FakeClock | None = None, **health: Any
) -> Iterator[RunningGateway]:
    """One route per backend (model = backend name), health with `health` settings, the
    health board on `clock` (a FakeClock the test advances) when given."""
    config = {
        "plugins": {"openai": None, "health": health, "admin_api": None},
        "backends": {
            name: {"provider": "openai", "base_url": url, "api_key": KEY}
            for name, url in backends.items()
        },
        "routes": [{"name": n, "match": {"model": n}, "backend": n} for n in backends],
    }

    def on_clock(gw: Gateway) -> None:
        if clock is not None:
            board = gw.services.get(HealthService)
            assert board is not None
            board.clock = clock

    with run_gateway(config, directory=tmp_path, prepare=on_clock) as gw:
        yield gw


def client(gw: RunningGateway) -> openai.OpenAI:
    return gw.resource(
        "openai",
        lambda: openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0, timeout=30),
    )


def health_view(gw: RunningGateway) -> dict[str, Any]:
    answer = gw.http("GET", "/modelway/health")
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/json"
    return answer.json


def ask(gw: RunningGateway, model: str, expect: type[Exception] | None) -> None:
    if expect is None:
        answer = client(gw).chat.completions.create(model=model, messages=MESSAGES)
        assert answer.choices[0].message.content
        return
    with pytest.raises(expect):
        client(gw).chat.completions.create(model=model, messages=MESSAGES)


class Switch:
    """An upstream behavior the test flips between named replies by setting `mode`."""

    def __init__(self, **replies: Callable[[Received], Reply]) -> None:
        self.replies = replies
        self.mode = next(iter(replies))

    def __call__(self, received: Received) -> Reply:
        return self.replies[self.mode](received)


def test_refused_backend_is_ejected_after_n_failures_and_listed(tmp_path, caplog, closed_port):
    dead = f"http://127.0.0.1:{closed_port}/v1"
    clock = FakeClock()
    with (
        caplog.at_level(logging.INFO, logger="modelway.health"),
        gateway(tmp_path, {"dead": dead}, clock, failures_to_eject=3, cooldown_seconds=120) as gw,
    ):
        for _ in range(2):
            ask(gw, "dead", openai.InternalServerError)
        view = health_view(gw)
        assert view["ejected"] == []
        assert view["backends"]["dead"]["consecutive_failures"] == 2
        ask(gw, "dead", openai.InternalServerError)
        clock.advance(20)
        view = health_view(gw)
    assert view["ejected"] == ["dead"]
    entry = view["backends"]["dead"]
    assert entry["state"] == "ejected"
    assert entry["last_error"] == "connect"
    assert entry["seconds_left"] == 100
    assert entry["cooldown_seconds"] == 120
    lines = [r.getMessage() for r in caplog.records if r.name == "modelway.health"]
    assert len(lines) == 1 and "'dead' ejected for 120.0s" in lines[0], lines


def test_failing_backend_is_probed_after_the_cooldown_and_restored(tmp_path, caplog):
    switch = Switch(ok=openai_behavior, down=status_reply(503))
    clock = FakeClock()
    with (
        UpstreamServer(switch) as server,
        caplog.at_level(logging.INFO, logger="modelway.health"),
        gateway(tmp_path, {"flaky": server.url}, clock, failures_to_eject=3, cooldown_seconds=30)
        as gw,
    ):
        switch.mode = "down"
        for _ in range(3):
            ask(gw, "flaky", openai.InternalServerError)
        assert health_view(gw)["ejected"] == ["flaky"]
        clock.advance(29)
        assert health_view(gw)["backends"]["flaky"]["state"] == "ejected"
        clock.advance(1)
        assert health_view(gw)["backends"]["flaky"]["state"] == "half_open"
        ask(gw, "flaky", openai.InternalServerError)  # the probe fails: ejected again, longer
        entry = health_view(gw)["backends"]["flaky"]
        assert entry["ejections"] == 2 and entry["cooldown_seconds"] == 60
        assert entry["reason"] == "probe failed: http_503"
        clock.advance(60)
        assert health_view(gw)["backends"]["flaky"]["state"] == "half_open"
        switch.mode = "ok"
        ask(gw, "flaky", None)
        view = health_view(gw)
    assert view["ejected"] == []
    assert view["backends"]["flaky"]["state"] == "healthy"
    assert len(server.received) == 5  # three failures, the failed probe, the good probe
    lines = [r.getMessage() for r in caplog.records if r.name == "modelway.health"]
    assert [("ejected" in ln, "restored" in ln) for ln in lines] == [
        (True, False),
        (True, False),
        (False, True),
    ], lines
    assert all("'flaky'" in ln for ln in lines)


def test_429_with_retry_after_extends_the_cooldown(tmp_path):
    clock = FakeClock()
    with (
        UpstreamServer(status_reply(429, headers={"retry-after": "90"})) as server,
        gateway(
            tmp_path, {"limited": server.url}, clock, failures_to_eject=2, cooldown_seconds=0.2
        ) as gw,
    ):
        for _ in range(2):
            ask(gw, "limited", openai.RateLimitError)
        clock.advance(10)
        entry = health_view(gw)["backends"]["limited"]
    assert entry["state"] == "ejected"
    assert entry["cooldown_seconds"] == 90
    assert entry["seconds_left"] == 80
    assert entry["last_error"] == "http_429"


def test_client_errors_from_the_backend_do_not_eject_it(tmp_path):
    with (
        UpstreamServer(status_reply(400)) as server,
        gateway(tmp_path, {"picky": server.url}, failures_to_eject=2) as gw,
    ):
        for _ in range(5):
            ask(gw, "picky", openai.BadRequestError)
        view = health_view(gw)
    assert view["ejected"] == []
    assert view["backends"]["picky"]["consecutive_failures"] == 0


def test_one_backends_failures_leave_the_others_in_service(tmp_path, closed_port):
    dead = f"http://127.0.0.1:{closed_port}/v1"
    with (
        UpstreamServer() as alive,
        gateway(
            tmp_path, {"dead": dead, "alive": alive.url}, failures_to_eject=1, cooldown_seconds=60
        ) as gw,
    ):
        ask(gw, "dead", openai.InternalServerError)
        ask(gw, "alive", None)
        view = health_view(gw)
    assert view["ejected"] == ["dead"]
    assert view["backends"]["alive"]["state"] == "healthy"
