"""Time that a test controls: a clock to inject, and a sleep that waits for the test.

Code that takes a clock (`HealthBoard(clock=...)`) gets a `FakeClock`, which moves only when
the test calls `advance`. Code that takes an async sleep (the Vertex token refresher) gets a
`ManualSleep`, which records each requested delay and returns only when the test releases it,
so a "one hour later" happens at once and in a known order.
"""

from __future__ import annotations

import asyncio
import threading

from modelway.testing.wait import DEFAULT_TIMEOUT, wait_until


class FakeClock:
    """Monotonic seconds that move only by `advance` (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now


class ManualSleep:
    """An `asyncio.sleep` stand-in: each call records its delay and waits for `release`.

    The first `free` calls return at once. Runs on any event loop; the test thread calls
    `release` (let the oldest waiting sleep return, or the next one if none waits) and
    `wait_for_sleepers` (until that many sleeps were requested).
    """

    def __init__(self, free: int = 0) -> None:
        self.delays: list[float] = []
        self._credit = free
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    async def __call__(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self.delays.append(delay)
            if self._credit > 0:
                self._credit -= 1
                return
            self._waiting.append((loop, future))
        await future

    def release(self, count: int = 1) -> None:
        """Let `count` sleeps return: those waiting now first, then the next ones."""
        with self._lock:
            for _ in range(count):
                if self._waiting:
                    loop, future = self._waiting.pop(0)
                    loop.call_soon_threadsafe(_finish, future)
                else:
                    self._credit += 1

    def wait_for_sleepers(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[float]:
        """Wait until `count` sleeps were requested; returns their delays."""
        wait_until(
            lambda: len(self.delays) >= count,
            timeout=timeout,
            what=lambda: f"{count} sleep(s), seen {self.delays}",
        )
        return list(self.delays)


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
