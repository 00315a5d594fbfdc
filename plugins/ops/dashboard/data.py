"""The dashboard's JSON: routes and their backends with health, the variants' statistics side
by side (plugin `stats`), the last hour's timeline and the last errors."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from modelway.plugins.ops.dashboard.timeline import Timeline
from modelway.services import HealthService, StatsService

if TYPE_CHECKING:
    from modelway.runtime import Gateway, Route


async def snapshot(gateway: Gateway, timeline: Timeline) -> dict[str, Any]:
    """The page's data; the statistics of every process when the state store is shared."""
    health = gateway.services.get(HealthService)
    stats = gateway.services.get(StatsService)
    board = health.snapshot() if health is not None else None
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plugins": {"stats": stats is not None, "health": health is not None},
        "routes": [_route(route, health) for route in gateway.routes],
        "health": board,
        "stats": await stats.collect() if stats is not None else None,
        "timeline": timeline.snapshot(),
    }


def _route(route: Route, health: HealthService | None) -> dict[str, Any]:
    total = sum(t.weight for t in route.targets) or 1.0
    primary = [
        {"backend": t.backend.name, "weight": round(t.weight / total, 4), "role": "primary"}
        for t in route.targets
    ]
    failover = [
        {"backend": b.name, "weight": None, "role": f"failover {index + 1}"}
        for index, group in enumerate(route.groups)
        for b in group
    ]
    backends = []
    for entry in primary + failover:
        name = entry["backend"]
        backend = next((t.backend for t in route.targets if t.backend.name == name), None)
        backend = backend or next(b for g in route.groups for b in g if b.name == name)
        state = health.state(name) if health is not None else "unknown"
        ejections = health.ejections(name) if health is not None else 0
        backends.append({**entry, "provider": backend.provider_name, "state": state,
                         "ejections": ejections})  # fmt: skip
    return {"name": route.name, "models": list(route.config.match.models), "backends": backends}
