"""The timeout model of upstream calls: connect, first byte, idle between bytes, total.

Each of the four is set gateway-wide (`gateway.timeouts`), per backend and per route; for
each, the route's value wins over the backend's, which wins over the gateway's. What each
bounds, the failover trigger it is, and what the client sees:

| timeout      | bounds                                              | trigger           |
|--------------|-----------------------------------------------------|-------------------|
| `connect`    | opening the connection (TCP, TLS)                   | `connect_timeout` |
| `first_byte` | sending the request until the answer's headers      | `slow`            |
| `idle`       | any silence while waiting for or reading the answer | `timeout`         |
| `total`      | one attempt, from sending to the answer's last byte | `timeout`         |

A timeout before anything reached the client is a 504 (`upstream_timeout`) in the client's
API shape, after the next attempts when the trigger is in the route's `retry_on`; in a
stream that already started, an error event in the client's format ends it (or the next
backend continues it, with `continue_streams`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from modelway.config import BackendConfig, GatewaySettings, RouteConfig, TimeoutsConfig
from modelway.upstream import UpstreamFailure


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The timeouts of one attempt, in seconds (None: no limit)."""

    connect: float | None = None
    first_byte: float | None = None
    idle: float | None = None
    total: float | None = None


def resolve(
    gateway: GatewaySettings, backend: BackendConfig | None, route: RouteConfig | None
) -> Timeouts:
    """The timeouts of an attempt on `backend` for `route`: route over backend over gateway."""
    values: dict[str, float | None] = {
        "connect": gateway.timeouts.connect,
        "first_byte": gateway.timeouts.first_byte,
        "idle": gateway.timeouts.idle,
        "total": gateway.timeouts.total,
    }
    if backend is not None:
        if backend.timeout_seconds is not None:
            values["idle"] = backend.timeout_seconds
        values.update(_given(backend.timeouts))
    if route is not None:
        older = route.failover.first_byte_timeout_seconds if route.failover else None
        if older is not None:
            values["first_byte"] = older
        values.update(_given(route.timeouts))
    return Timeouts(**values)


def _given(level: TimeoutsConfig | None) -> dict[str, float | None]:
    return level.given() if level is not None else {}


def deadline_of(total: float | None) -> float | None:
    """The loop time at which an attempt starting now runs out of its `total`."""
    return None if total is None else asyncio.get_running_loop().time() + total


@contextlib.asynccontextmanager
async def before(deadline: float | None) -> AsyncIterator[None]:
    """Bound a block by an attempt's total deadline: past it, a `total` UpstreamFailure."""
    if deadline is None:
        yield
        return
    try:
        async with asyncio.timeout_at(deadline):
            yield
    except TimeoutError:
        raise UpstreamFailure(
            "total", 504, "the backend did not finish its answer within the total timeout"
        ) from None
