"""The Redis state store: one shared state for every worker and every instance.

Needs the optional dependency `modelway[redis]` (the `redis` package's asyncio client).
Reservations and settlements are Lua scripts: the requests of one event-loop turn go together
in one round trip, each request's reservations still atomic and all-or-nothing. Windows use
Redis's own clock (`TIME`), so instances whose clocks differ still agree; a window is a hash
(`id`, `u` used) that expires when the window ends. Every call has a short timeout and no
retry: an unreachable Redis is `StateUnavailable` at once, never a hang
(`modelway.statestore` adds the fail-fast pause between tries). Keys of one request may live
in different hash slots: Redis Cluster is not supported, a single Redis (or a
Sentinel-managed primary behind one address) is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from modelway.errors import ConfigError
from modelway.state import Ask, Change, Reservation, StateUnavailable

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out, k, a = {}, 0, 2
for g = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  local found, all = {}, true
  for i = 1, n do
    local key, amount, limit = KEYS[k + i], tonumber(ARGV[a + 3*i - 2]), tonumber(ARGV[a + 3*i - 1])
    local got = redis.call('HMGET', key, 'id', 'u')
    local id, used, left = got[1], tonumber(got[2] or '0'), 0
    if id then left = redis.call('PTTL', key) else id = false; left = tonumber(ARGV[a + 3*i]) end
    local fit = amount <= 0 or used + amount <= limit
    if not fit then all = false end
    found[i] = {id, used, left, fit}
  end
  local rows = {}
  for i = 1, n do
    local key, id, used, left = KEYS[k + i], found[i][1], found[i][2], found[i][3]
    if all then
      if not id then
        id = tostring(now)
        redis.call('HSET', key, 'id', id, 'u', 0)
        redis.call('PEXPIRE', key, ARGV[a + 3*i])
      end
      used = tonumber(redis.call('HINCRBYFLOAT', key, 'u', ARGV[a + 3*i - 2]))
    end
    rows[i] = {found[i][4] and 1 or 0, tostring(used), tostring(left), id or ''}
  end
  out[g] = rows
  k = k + n
  a = a + 1 + 3 * n
end
return out
"""

_SETTLE = """
for i = 1, #KEYS do
  local window, amount, ttl = ARGV[3*i-2], ARGV[3*i-1], ARGV[3*i]
  if window == '' then
    redis.call('INCRBYFLOAT', KEYS[i], amount)
    if ttl ~= '' and redis.call('PTTL', KEYS[i]) == -1 then redis.call('PEXPIRE', KEYS[i], ttl) end
  elseif redis.call('HGET', KEYS[i], 'id') == window then
    redis.call('HINCRBYFLOAT', KEYS[i], 'u', amount)
  end
end
return #KEYS
"""


_MERGE = """
local a = 1
for op = 1, 3 do
  local n = tonumber(ARGV[a])
  a = a + 1
  for i = 1, n do
    local field, value = ARGV[a], ARGV[a + 1]
    if op == 1 then
      redis.call('HINCRBYFLOAT', KEYS[1], field, value)
    else
      local old = tonumber(redis.call('HGET', KEYS[1], field))
      local new = tonumber(value)
      if old == nil or (op == 2 and new > old) or (op == 3 and new < old) then
        redis.call('HSET', KEYS[1], field, value)
      end
    end
    a = a + 2
  end
end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore:
    """A `StateStore` on Redis (`redis://`, `rediss://` or `unix://` URL)."""

    def __init__(self, url: str, timeout_seconds: float = 0.25, prefix: str = "modelway:") -> None:
        try:
            import redis.asyncio as aioredis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigError(
                "state.store: redis needs the redis package: pip install 'modelway[redis]'"
            ) from None
        from redis import exceptions

        self.prefix = prefix
        self.timeout_seconds = timeout_seconds
        self._asks: list[tuple[list[Ask], asyncio.Future[Any]]] = []
        self._changes: list[tuple[list[Change], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
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
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._merge = self._client.register_script(_MERGE)

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

    async def add(self, key: str, amount: float, ttl_seconds: float | None = None) -> float:
        await self.settle([Change(key, amount, None, ttl_seconds)])
        value = await self.get(key)
        return float(value or 0)

    async def reserve(
        self, key: str, amount: float, limit: float, window_seconds: float
    ) -> Reservation:
        return (await self.reserve_all([Ask(key, amount, limit, window_seconds)]))[0]

    async def reserve_all(self, asks: Sequence[Ask]) -> list[Reservation]:
        """Queued with the other requests of this event-loop turn: one script for all."""
        if not asks:
            return []
        future: asyncio.Future[list[Reservation]] = asyncio.get_running_loop().create_future()
        self._asks.append((list(asks), future))
        self._schedule()
        return await future

    async def settle(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._changes.append((list(changes), future))
        self._schedule()
        await future

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        asks, self._asks = self._asks, []
        changes, self._changes = self._changes, []
        loop = asyncio.get_running_loop()
        for job in (self._send_asks(asks) if asks else None,
                    self._send_changes(changes) if changes else None):
            if job is not None:
                task = loop.create_task(job)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send_asks(self, batch: list[tuple[list[Ask], asyncio.Future[Any]]]) -> None:
        keys: list[str] = []
        args: list[Any] = [len(batch)]
        for asks, _ in batch:
            args.append(len(asks))
            for ask in asks:
                keys.append(self._k(ask.key))
                args += [repr(float(ask.amount)), repr(float(ask.limit)),
                         _ms(ask.window_seconds)]
        try:
            groups = await self._call(self._reserve(keys=keys, args=args))
        except StateUnavailable as exc:
            _fail(batch, exc)
            return
        for (asks, future), rows in zip(batch, groups, strict=True):
            if not future.done():
                future.set_result([
                    Reservation(bool(fit), float(used), ask.limit,
                                max(0.0, float(left) / 1000), _text(window))
                    for ask, (fit, used, left, window) in zip(asks, rows, strict=True)
                ])

    async def _send_changes(self, batch: list[tuple[list[Change], asyncio.Future[Any]]]) -> None:
        keys: list[str] = []
        args: list[Any] = []
        for changes, _ in batch:
            for change in changes:
                keys.append(self._k(change.key))
                ttl = "" if change.ttl_seconds is None else str(_ms(change.ttl_seconds))
                args += [change.window or "", repr(float(change.amount)), ttl]
        try:
            await self._call(self._settle(keys=keys, args=args))
        except StateUnavailable as exc:
            _fail(batch, exc)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)

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


def _fail(batch: list[tuple[Any, asyncio.Future[Any]]], exc: StateUnavailable) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(StateUnavailable(str(exc)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
