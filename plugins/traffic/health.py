"""Built-in plugin `health`: ejects backends that keep failing, probes them, restores them.

Fed by `modelway_attempt_result`. A backend whose attempts fail `failures_to_eject` times in
a row through its own fault (connection refused or reset, DNS, TLS, timeouts, a slow first
byte, a broken stream, 5xx, 429; never a 4xx that the client caused) is ejected for a
cool-down. The cool-down doubles with each ejection that follows without a restoration in
between, up to `max_cooldown_seconds`, and is never shorter than a `retry-after` the backend
sent with a 429. When it ends, the backend is half-open: `HealthBoard.available` answers True
for one probe attempt; a good answer restores the backend, a failure ejects it again. Any
good answer restores it, also one to an attempt sent while it was out of service (the router
still tries ejected backends when nothing else is left).

The board is the gateway's `HealthService` (`gateway.services`), so it outlives configuration
reloads; the router asks it which backends to try first. Ejections and restorations are logged on
`modelway.health`, one line each.

With a shared state store (`state: {store: redis}`), ejections are shared too
(`modelway.plugins.traffic.healthsync`): an ejection one process decides is seen by every
process on the store within about `sync_seconds`, and so is a restoration. Failures are counted
per process; the router's hot path reads only this process's board.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelway import hookimpl
from modelway.plugins.traffic.healthsync import share
from modelway.services import HealthService, Services

if TYPE_CHECKING:
    from modelway.context import Attempt, AttemptOutcome, RequestContext
    from modelway.plugins.traffic.healthsync import SharedEjection
    from modelway.runtime import Gateway

logger = logging.getLogger("modelway.health")

RETRY_AFTER_CAP_SECONDS = 3600.0
"""A `retry-after` longer than this is read as this (a garbled header must not eject forever)."""


class Settings(BaseModel):
    """`plugins: {health: {...}}`."""

    model_config = ConfigDict(extra="forbid")
    failures_to_eject: int = Field(3, ge=1)
    """Consecutive failures (the backend's fault) that eject a backend."""
    cooldown_seconds: float = Field(30.0, gt=0)
    """The first ejection's length; each following one (without a restoration) doubles it."""
    max_cooldown_seconds: float = Field(300.0, gt=0)
    probe_timeout_seconds: float = Field(60.0, gt=0)
    """A half-open backend's probe that reports nothing in this time frees the probe slot."""
    sync_seconds: float = Field(0.5, gt=0, le=60)
    """With a shared state store: how often this process reads the others' ejections."""

    @model_validator(mode="after")
    def _max_not_below_base(self) -> Settings:
        if self.max_cooldown_seconds < self.cooldown_seconds:
            raise ValueError("max_cooldown_seconds must not be below cooldown_seconds")
        return self


def is_backend_fault(outcome: AttemptOutcome) -> bool:
    """Whether a failed attempt says something about the backend (not about the request)."""
    if outcome.ok:
        return False
    status = outcome.status
    if status is not None and 400 <= status < 500 and status != 429:
        return False  # the backend answered; the request was at fault
    return not (outcome.error or "").startswith("client")


def describe(outcome: AttemptOutcome) -> str:
    """A short label for a failure: the error kind, or the HTTP status."""
    if outcome.error:
        return outcome.error
    return f"http_{outcome.status}" if outcome.status is not None else "failure"


@dataclass(slots=True)
class BackendHealth:
    """What the board knows about one backend."""

    failures: int = 0
    """Consecutive failures (the backend's fault) since the last good answer."""
    ejections: int = 0
    """Ejections since the last restoration: the exponent of the cool-down's backoff."""
    total_ejections: int = 0
    ejected_at: float | None = None
    ejected_until: float | None = None
    """None while the backend is in service."""
    cooldown: float = 0.0
    reason: str | None = None
    last_error: str | None = None
    retry_until: float = 0.0
    """The latest `retry-after` deadline the backend asked for since its last good answer."""
    probe_started: float | None = None
    ejection_id: str | None = None
    """Which ejection this is (shared between processes, to tell one from the next)."""
    ejected_by: str | None = None
    """The process that decided the ejection (`host:pid`)."""

    def state(self, now: float, probe_timeout: float) -> str:
        if self.ejected_until is None:
            return "healthy"
        if now < self.ejected_until:
            return "ejected"
        if self.probe_started is not None and now - self.probe_started < probe_timeout:
            return "probing"
        return "half_open"


class HealthBoard:
    """Per-backend health, keyed by backend name. Runs on the gateway's event loop.

    `clock` is monotonic seconds; tests inject their own, or pass `now` to each call.
    """

    def __init__(
        self, settings: Settings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or Settings()
        self.clock = clock
        self._backends: dict[str, BackendHealth] = {}
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._numbers = itertools.count(1)
        self.changed: set[str] = set()
        """Backends whose ejection or restoration this process decided and has not shared yet."""
        self.on_change: Callable[[], None] | None = None
        self.shared = False
        """Whether the ejections are shared with other processes (`healthsync`)."""

    def configure(self, settings: Settings) -> None:
        """New settings (a reload); the backends' state is kept."""
        self.settings = settings

    # ------------------------------------------------------------------------- queries

    def available(self, backend: str, now: float | None = None) -> bool:
        """Whether `backend` may be tried now.

        True while it is in service; False while ejected. Once the cool-down is over it
        answers True for exactly one caller (the probe) and False to the others until the
        probe reports, or until `probe_timeout_seconds` pass without a report.
        """
        health = self._backends.get(backend)
        if health is None or health.ejected_until is None:
            return True
        now = self.clock() if now is None else now
        if health.state(now, self.settings.probe_timeout_seconds) != "half_open":
            return False
        health.probe_started = now
        return True

    def ejections(self, backend: str) -> int:
        """How many times the backend was ejected since the gateway started."""
        health = self._backends.get(backend)
        return 0 if health is None else health.total_ejections

    def is_ejected(self, backend: str) -> bool:
        """Whether `backend` is out of service (cooling down, half-open or probing).

        Unlike `available`, this never takes the probe slot.
        """
        health = self._backends.get(backend)
        return health is not None and health.ejected_until is not None

    def state(self, backend: str, now: float | None = None) -> str:
        """`healthy`, `ejected`, `half_open` (a probe may go) or `probing`."""
        health = self._backends.get(backend)
        if health is None:
            return "healthy"
        now = self.clock() if now is None else now
        return health.state(now, self.settings.probe_timeout_seconds)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """A JSON-safe view: every backend seen, and the names of those out of service."""
        now = self.clock() if now is None else now
        backends = {name: self._view(h, now) for name, h in sorted(self._backends.items())}
        ejected = [name for name, view in backends.items() if view["state"] != "healthy"]
        return {"ejected": ejected, "backends": backends, "shared": self.shared,
                "settings": self.settings.model_dump()}  # fmt: skip

    def _view(self, health: BackendHealth, now: float) -> dict[str, Any]:
        view: dict[str, Any] = {
            "state": health.state(now, self.settings.probe_timeout_seconds),
            "consecutive_failures": health.failures,
            "ejections": health.total_ejections,
            "last_error": health.last_error,
        }
        if health.ejected_until is not None and health.ejected_at is not None:
            view["reason"] = health.reason
            view["cooldown_seconds"] = round(health.cooldown, 3)
            view["seconds_left"] = round(max(0.0, health.ejected_until - now), 3)
            view["ejected_seconds_ago"] = round(now - health.ejected_at, 3)
            if self.shared:
                view["ejected_by"] = health.ejected_by
        return view

    def entry(self, backend: str) -> BackendHealth | None:
        """What the board knows about `backend` (for `healthsync`), if anything."""
        return self._backends.get(backend)

    # ------------------------------------------------------------------------- updates

    def record(self, backend: str, outcome: AttemptOutcome, now: float | None = None) -> None:
        """Take one attempt's outcome into account."""
        now = self.clock() if now is None else now
        health = self._backends.setdefault(backend, BackendHealth())
        if is_backend_fault(outcome):
            self._failed(backend, health, outcome, now)
        else:
            self._answered(backend, health, now)

    def _answered(self, backend: str, health: BackendHealth, now: float) -> None:
        if health.ejected_until is not None:
            logger.info(
                "backend '%s' restored: it answered after %.1fs out of service "
                "(cool-down was %.1fs)",
                backend,
                now - (health.ejected_at or now),
                health.cooldown,
            )
            self._changed(backend)
        self._restore(health)

    @staticmethod
    def _restore(health: BackendHealth) -> None:
        health.failures = 0
        health.ejections = 0
        health.ejected_at = health.ejected_until = health.probe_started = None
        health.reason = health.ejection_id = health.ejected_by = None
        health.retry_until = 0.0

    def _changed(self, backend: str) -> None:
        if self.shared:
            self.changed.add(backend)
            if self.on_change is not None:
                self.on_change()

    def _failed(
        self, backend: str, health: BackendHealth, outcome: AttemptOutcome, now: float
    ) -> None:
        health.failures += 1
        health.last_error = describe(outcome)
        if outcome.retry_after is not None and outcome.retry_after > 0:
            wait = min(outcome.retry_after, RETRY_AFTER_CAP_SECONDS)
            health.retry_until = max(health.retry_until, now + wait)
        if health.ejected_until is None:
            if health.failures >= self.settings.failures_to_eject:
                reason = f"{health.failures} consecutive failures, last: {health.last_error}"
                self._eject(backend, health, now, reason)
        elif now >= health.ejected_until:
            self._eject(backend, health, now, f"probe failed: {health.last_error}")
        elif health.retry_until > health.ejected_until:
            # An attempt sent before the ejection asks for a longer pause: honour it, as a new
            # ejection record (another id), so that the other processes adopt the longer one.
            longer = health.retry_until - health.ejected_until
            health.cooldown += longer
            health.ejected_until = health.retry_until
            self._decided(backend, health)
            logger.warning("backend '%s' stays ejected %.1fs longer (respecting retry-after)",
                           backend, longer)

    def _decided(self, backend: str, health: BackendHealth) -> None:
        """An ejection this process decided (or lengthened): a new record, to be shared."""
        health.ejection_id = f"{self.process}:{next(self._numbers)}"
        health.ejected_by = self.process
        self._changed(backend)

    def _eject(self, backend: str, health: BackendHealth, now: float, reason: str) -> None:
        settings = self.settings
        health.ejections += 1
        health.total_ejections += 1
        backoff = settings.cooldown_seconds * 2.0 ** min(health.ejections - 1, 32)
        until = max(now + min(backoff, settings.max_cooldown_seconds), health.retry_until)
        health.ejected_at, health.ejected_until = now, until
        health.cooldown = until - now
        health.reason = reason
        health.probe_started = None
        health.failures = 0
        self._decided(backend, health)
        respected = " (respecting retry-after)" if until == health.retry_until else ""
        logger.warning(
            "backend '%s' ejected for %.1fs%s: %s", backend, health.cooldown, respected, reason
        )


    # ------------------------------------------------------------------------- shared

    def adopt(self, backend: str, ejection: SharedEjection, now: float) -> None:
        """Take over an ejection another process decided (`healthsync`), unless it is known."""
        health = self._backends.setdefault(backend, BackendHealth())
        if health.ejection_id == ejection.id:
            return
        health.ejections = ejection.ejections
        health.ejected_at = now - ejection.age
        health.ejected_until = now + ejection.left
        health.cooldown = ejection.cooldown
        health.reason = ejection.reason
        health.ejection_id, health.ejected_by = ejection.id, ejection.by
        health.probe_started = None
        health.failures = 0
        logger.warning(
            "backend '%s' ejected by %s for %.1fs (%.1fs left): %s",
            backend, ejection.by, ejection.cooldown, max(0.0, ejection.left), ejection.reason,
        )  # fmt: skip

    def release(self, backend: str) -> None:
        """Another process restored `backend` (its shared ejection is gone)."""
        health = self._backends.get(backend)
        if health is None or health.ejected_until is None:
            return
        logger.info("backend '%s' restored by another gateway process", backend)
        self._restore(health)


def board_of(services: Services) -> HealthBoard:
    """The board kept in the gateway's services, created on first use."""
    board = services.setdefault(HealthService, HealthBoard)
    assert isinstance(board, HealthBoard)
    return board


class HealthPlugin:
    """Keeps the gateway's `HealthService` up to date with every attempt's outcome."""

    Settings = Settings

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        board_of(gateway.services).configure(gateway.plugin_settings("health") or Settings())

    @hookimpl
    def modelway_startup(self, gateway: Gateway) -> None:
        share(board_of(gateway.services), gateway)

    @hookimpl
    def modelway_attempt_result(
        self, ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome
    ) -> None:
        if ctx.gateway is not None:
            board_of(ctx.gateway.services).record(attempt.backend.name, outcome)
