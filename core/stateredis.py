"""The Redis state store: one shared state for every worker and every instance.

Needs the optional dependency `modelway[redis]` (the `redis` package's asyncio client;
`hiredis`, when installed, parses its answers). Reservations and settlements are one Lua
script (`modelway.redislua.BATCH`): the reservations of one event-loop turn go together in
one round trip, each request's reservations still atomic and all-or-nothing, and the
settlements queued since the last batch ride along (summed per key; settlements alone wait at
most `settle_delay_seconds` for reservations to go with, then go by themselves). One batch is
under way at a time: what comes meanwhile waits for its answer and goes in the next, so a busy
process sends fewer, larger batches and an idle one waits for none. Windows use
Redis's own clock (`TIME`), so instances whose clocks differ still agree; a window is a hash
(`id`, `u` used) that expires when the window ends. Every call has a short timeout and no
retry: an unreachable Redis is `StateUnavailable` at once, never a hang
(`modelway.statestore` adds the fail-fast pause between tries). Keys of one request may live
in different hash slots: Redis Cluster is not supported, a single Redis (or a
Sentinel-managed primary behind one address) is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from modelway.errors import ConfigError
from modelway.redislua import ADD, BATCH, DELETE_IF, MERGE, NONE
from modelway.state import Ask, Change, Reservation, StateUnavailable

logger = logging.getLogger("modelway.state")

SETTLE_DELAY_SECONDS = 0.005
"""How long settlements wait for reservations to share their round trip."""

_Pending = list[tuple[Any, "asyncio.Future[Any]"]]

def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    """A `StateStore` on Redis (`redis://`, `rediss://` or `unix://` URL)."""

    def __init__(
        self, url: str, timeout_seconds: float = 0.25, prefix: str = "modelway:",
        settle_delay_seconds: float = SETTLE_DELAY_SECONDS,
    ) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:
            raise ConfigError(
                "state.store: redis needs the redis package: pip install 'modelway[redis]'"
            ) from None
        from redis import exceptions

        self.prefix = prefix
        self.timeout_seconds = timeout_seconds
        self.settle_delay_seconds = settle_delay_seconds
        self._asks: _Pending = []
        self._changes: dict[tuple[str, str, str], float] = {}
        self._settled: _Pending = []
        self._soon = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = False
        self._again = False
        self._errors: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError, exceptions.TimeoutError, exceptions.BusyLoadingError,
            OSError, TimeoutError,
        )  # fmt: skip
        self._client: Any = aioredis.from_url(
            url,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._batch = self._client.register_script(BATCH)
        self._merge = self._client.register_script(MERGE)
        self._delete_if = self._client.register_script(DELETE_IF)
        self._add = self._client.register_script(ADD)

    async def _call(self, operation: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await operation
        except self._errors as exc:
            raise StateUnavailable(f"redis: {type(exc).__name__}: {exc}") from None

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._call(self._client.get(self._k(key)))
        return value

    async def set(self, key: str, value: bytes, ttl_seconds: float | None = None) -> None:
        px = None if ttl_seconds is None else _ms(ttl_seconds)
        await self._call(self._client.set(self._k(key), value, px=px))

    async def delete(self, key: str) -> bool:
        return bool(await self._call(self._client.delete(self._k(key))))

    async def delete_if(self, key: str, expected: bytes) -> bool:
        """One script: compared and deleted in one step (another process's write in between
        is kept)."""
        return bool(await self._call(self._delete_if(keys=[self._k(key)], args=[expected])))

    async def add(self, key: str, amount: float, ttl_seconds: float | None = None) -> float:
        """One script: the increment and the value it made (another process's increment
        cannot come between them)."""
        ttl = NONE if ttl_seconds is None else str(_ms(ttl_seconds))
        value = await self._call(self._add(keys=[self._k(key)], args=[repr(float(amount)), ttl]))
        return float(value)

    async def reserve(
        self, key: str, amount: float, limit: float, window_seconds: float
    ) -> Reservation:
        return (await self.reserve_all([Ask(key, amount, limit, window_seconds)]))[0]

    async def reserve_all(self, asks: Sequence[Ask]) -> list[Reservation]:
        """Queued with the other requests of this event-loop turn: one script for all."""
        if not asks:
            return []
        future: asyncio.Future[list[Reservation]] = asyncio.get_running_loop().create_future()
        self._asks.append((asks, future))
        self._schedule(soon=True)
        return await future

    async def settle(self, changes: Sequence[Change]) -> None:
        """Applied with the next batch of reservations (within `settle_delay_seconds`)."""
        await self._settle(changes, soon=False)

    async def _settle(self, changes: Sequence[Change], soon: bool) -> None:
        if not changes:
            return
        pending = self._changes
        for change in changes:
            ttl = NONE if change.ttl_seconds is None else str(_ms(change.ttl_seconds))
            name = (change.key, change.window or NONE, ttl)
            pending[name] = pending.get(name, 0.0) + change.amount
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settled.append((None, future))
        self._schedule(soon)
        await future

    def _schedule(self, soon: bool) -> None:
        loop = asyncio.get_running_loop()
        if soon:
            if not self._soon:
                self._soon = True
                loop.call_soon(self._flush)
        elif not self._soon and self._timer is None:
            self._timer = loop.call_later(self.settle_delay_seconds, self._flush)

    def _flush(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._asks or self._settled):
            return
        if self._in_flight:  # they go when the batch under way is answered
            self._again = True
            return
        asks, self._asks = self._asks, []
        changes, self._changes = self._changes, {}
        settled, self._settled = self._settled, []
        task = asyncio.get_running_loop().create_task(self._send(asks, changes, settled))
        self._tasks.add(task)
        self._in_flight = True
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight = False
        if self._again:
            self._again = False
            self._flush()

    async def _send(
        self, asks: _Pending, changes: dict[tuple[str, str, str], float], settled: _Pending
    ) -> None:
        index: dict[str, str] = {}

        def ref(key: str) -> str:
            found = index.get(key)
            if found is None:
                found = index[key] = str(len(index) + 1)
            return found

        settle_words = []
        for (key, window, ttl), amount in changes.items():
            if amount:
                settle_words += [ref(key), window, repr(amount), ttl]
        reserve_words = []
        for group, _ in asks:
            reserve_words.append(str(len(group)))
            for ask in group:
                reserve_words += [ref(ask.key), repr(float(ask.amount)), repr(float(ask.limit)),
                                  str(_ms(ask.window_seconds))]
        keys = [self._k(key) for key in index]
        try:
            answer = await self._call(
                self._batch(keys=keys, args=[" ".join(settle_words), " ".join(reserve_words)])
            )
        except (Exception, asyncio.CancelledError) as exc:  # nobody waits on a failed batch
            if not isinstance(exc, StateUnavailable | asyncio.CancelledError):
                logger.error("redis: the batch script failed: %s: %s", type(exc).__name__, exc)
            _fail(asks + settled, StateUnavailable(f"redis: {type(exc).__name__}: {exc}"))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for _, future in settled:
            if not future.done():
                future.set_result(None)
        _answer(asks, answer.split())

    async def keys(self, prefix: str) -> list[str]:
        cut = len(self.prefix)

        async def scan() -> list[str]:
            pattern = _glob_escape(self._k(prefix)) + "*"
            return [_text(key)[cut:] async for key in self._client.scan_iter(match=pattern)]

        found: list[str] = await self._call(scan())
        return found

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        found: list[bytes | None] = await self._call(
            self._client.mget([self._k(key) for key in keys])
        )
        return found

    async def merge_fields(
        self,
        key: str,
        sums: Mapping[str, float],
        maxima: Mapping[str, float] | None = None,
        minima: Mapping[str, float] | None = None,
    ) -> None:
        """One script: every field of the merge in one round trip, atomically."""
        if not (sums or maxima or minima):
            return
        args: list[Any] = []
        for part in (sums, maxima or {}, minima or {}):
            args.append(len(part))
            for name, value in part.items():
                args += [name, repr(float(value))]
        await self._call(self._merge(keys=[self._k(key)], args=args))

    async def fields(self, key: str) -> dict[str, float]:
        found: dict[Any, Any] = await self._call(self._client.hgetall(self._k(key)))
        return {_text(name): float(value) for name, value in found.items()}

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._client.ping()))
        except StateUnavailable:
            return False

    async def close(self) -> None:
        await self._client.aclose()


def _answer(asks: _Pending, words: list[bytes]) -> None:
    """Each request's reservations from the batch's answer (4 words per ask, in order)."""
    at = 0
    for group, future in asks:
        found = []
        for ask in group:
            fit, used, left, window = words[at:at + 4]
            at += 4
            found.append(Reservation(fit == b"1", float(used), ask.limit,
                                     max(0.0, float(left) / 1000),
                                     "" if window == b"-" else window.decode()))
        if not future.done():
            future.set_result(found)


def _fail(batch: _Pending, exc: StateUnavailable) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(StateUnavailable(str(exc)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
