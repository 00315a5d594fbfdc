"""The dashboard's memory of the last hour: requests, errors, failovers and guard decisions per
minute, and the last errors (status, code, route, backend: never a message, which may quote the
client). Kept in the gateway's services, so it outlives reloads."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelway.context import RequestContext

MINUTES = 60
LAST_ERRORS = 20
ACTIONS = ("pass", "modified", "reject", "error")


class Minute:
    __slots__ = ("errors", "failovers", "guards", "requests", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.requests = 0
        self.errors = 0
        self.failovers = 0
        self.guards = dict.fromkeys(ACTIONS, 0)


class Timeline:
    """Per-minute counters over the last hour and a ring of the last errors."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.minutes: deque[Minute] = deque(maxlen=MINUTES)
        self.errors: deque[dict[str, Any]] = deque(maxlen=LAST_ERRORS)

    def _minute(self) -> Minute:
        start = int(self.clock() // 60) * 60
        if not self.minutes or self.minutes[-1].start != start:
            self.minutes.append(Minute(start))
        return self.minutes[-1]

    def record(self, ctx: RequestContext) -> None:
        minute = self._minute()
        minute.requests += 1
        minute.failovers += sum(
            1 for a in ctx.attempts[:-1] if a.outcome is not None and not a.outcome.ok
        )
        for entry in ctx.annotations.get("guards") or ():
            action = entry.get("action") if isinstance(entry, dict) else None
            key = action if action in minute.guards else "error"
            minute.guards[key] += 1
        status = ctx.status or 0
        if status >= 400 or ctx.error is not None:
            minute.errors += 1
            self.errors.appendleft(_error(ctx, status))

    def snapshot(self) -> dict[str, Any]:
        """The last hour minute by minute (empty minutes included), oldest first."""
        now = int(self.clock() // 60) * 60
        by_start = {m.start: m for m in self.minutes}
        starts = [now - 60 * (MINUTES - 1 - i) for i in range(MINUTES)]
        rows = [by_start.get(s) for s in starts]
        return {
            "minutes": starts,
            "requests": [m.requests if m else 0 for m in rows],
            "errors": [m.errors if m else 0 for m in rows],
            "failovers": [m.failovers if m else 0 for m in rows],
            "guards": {a: [m.guards[a] if m else 0 for m in rows] for a in ACTIONS},
            "last_errors": list(self.errors),
        }


def _error(ctx: RequestContext, status: int) -> dict[str, Any]:
    served = ctx.served_by or (ctx.attempts[-1] if ctx.attempts else None)
    error = ctx.error
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "request_id": ctx.id,
        "status": status,
        "code": (error.code or error.type) if error is not None else None,
        "route": ctx.route.name if ctx.route else None,
        "backend": served.backend.name if served else None,
        "api": ctx.api.name if ctx.api else None,
        "attempts": len(ctx.attempts),
    }
