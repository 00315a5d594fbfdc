"""Typed services that plugins share, and that outlive configuration reloads.

A plugin that owns some state (backend health, statistics, the state store) provides it under
a protocol type; others look it up by that type, never by a string key:

    board = gateway.services.setdefault(HealthService, HealthBoard)   # the health plugin
    health = ctx.gateway.services.get(HealthService)                  # the router

The engine hands the same `Services` to every configuration it serves, so what one
configuration provides is still there after a reload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

T = TypeVar("T")


class Services:
    """A registry of service objects keyed by their protocol (or class)."""

    def __init__(self) -> None:
        self._items: dict[type, object] = {}

    def provide(self, kind: type[T], service: T) -> T:
        self._items[kind] = service
        return service

    def remove(self, kind: type[Any]) -> None:
        self._items.pop(kind, None)

    def get(self, kind: type[T]) -> T | None:
        return cast("T | None", self._items.get(kind))

    def setdefault(self, kind: type[T], factory: Callable[[], T]) -> T:
        """The service of `kind`, created with `factory` the first time."""
        found = self._items.get(kind)
        if found is None:
            found = self._items[kind] = factory()
        return cast(T, found)

    def require(self, kind: type[T]) -> T:
        found = self.get(kind)
        if found is None:
            raise LookupError(f"no {kind.__name__} service is provided (is its plugin enabled?)")
        return found


@runtime_checkable
class HealthService(Protocol):
    """Which backends are in service (provided by the `health` plugin)."""

    def state(self, backend: str) -> str:
        """`healthy`, `ejected` or `half_open`."""
        ...

    def available(self, backend: str) -> bool:
        """Whether an attempt may go to the backend now (takes the half-open probe slot)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The backends out of service, JSON-safe."""
        ...

    def ejections(self, backend: str) -> int:
        """How many times the backend was ejected since the gateway started."""
        ...


@runtime_checkable
class StatsService(Protocol):
    """Per-route, per-variant request statistics (provided by the `stats` plugin)."""

    def snapshot(self) -> dict[str, Any]:
        """This process's statistics, JSON-safe."""
        ...

    async def collect(self) -> dict[str, Any]:
        """The statistics of every process sharing the state store, summed (with a store of
        this process only, or one that cannot be reached: `snapshot`)."""
        ...

    def reset(self) -> None:
        """Start this process's statistics afresh."""
        ...

    async def clear(self) -> None:
        """Start afresh, the shared statistics too."""
        ...


class Reloader(Protocol):
    """Reloads the configuration file; raises ConfigError when the new one is invalid."""

    def __call__(self) -> Awaitable[None]: ...


class ReloadService:
    """The running server's reload entry point (provided by the runner)."""

    def __init__(self, reload: Reloader) -> None:
        self.reload = reload
