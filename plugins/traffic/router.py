"""The default router: the attempt plan for a route.

The primary target is a weighted pick over the route's targets, sticky when `split.cohort`
is set (`header:<name>`, `field:<name>` or `key`): the cohort value is hashed to a point on
the weight line, so the same user always lands on the same variant; without a value the pick
is random by weight. `split.force_header` lets a request name the variant's backend. Then
come the `failover` groups in priority order, each in a random order (load-balanced), without
repeats. Backends that health tracking has ejected go last, so they are tried only when
nothing else is left.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from modelway import hookimpl
from modelway.context import Attempt, Plan, RequestContext
from modelway.runtime import Route, Target
from modelway.services import HealthService

rng = random.Random()
"""Chance, for requests without a cohort value and for the order within a failover group.
Tests replace it with a seeded `random.Random` to get the same picks on every run."""


def cohort_value(ctx: RequestContext, cohort: str) -> str | None:
    if cohort == "key":
        return ctx.client.api_key
    kind, _, name = cohort.partition(":")
    if kind == "header":
        return ctx.headers.get(name.lower()) or None
    body = ctx.call.body if ctx.call else (ctx.request.body if ctx.request else {})
    value: Any = body.get(name)
    return str(value) if value not in (None, "") else None


def point(value: str | None) -> float:
    """A position in [0, 1): stable for a value, random without one."""
    if value is None:
        return rng.random()
    digest = hashlib.sha256(value.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(targets: list[Target], position: float) -> Target:
    live = [t for t in targets if t.weight > 0]
    total = sum(t.weight for t in live)
    mark = position * total
    for target in live:
        mark -= target.weight
        if mark < 0:
            return target
    return live[-1]


def primary(ctx: RequestContext, route: Route) -> Attempt | None:
    """The route's primary attempt (None for a failover-only route)."""
    config = route.config
    if config.split is None and config.backend is None:
        return None
    targets = route.targets
    if len(targets) == 1:
        return Attempt(targets[0].backend, targets[0].model)
    split = config.split
    assert split is not None
    forced = ctx.headers.get(split.force_header.lower(), "") if split.force_header else ""
    chosen = next((t for t in targets if t.backend.name == forced), None)
    if chosen is None:
        value = cohort_value(ctx, split.cohort) if split.cohort else None
        chosen = pick(targets, point(value))
    return Attempt(chosen.backend, chosen.model, variant=chosen.backend.name)


def failover_attempts(route: Route, taken: set[str]) -> list[Attempt]:
    attempts = []
    for index, group in enumerate(route.groups, start=1):
        for backend in rng.sample(group, len(group)):
            if backend.name not in taken:
                taken.add(backend.name)
                attempts.append(Attempt(backend, None, group=index))
    return attempts


def healthy_first(ctx: RequestContext, attempts: list[Attempt]) -> list[Attempt]:
    """Backends in service first; an ejected one whose cool-down is over is probed only when
    it would be tried first (so the probe is really sent); the others go last."""
    board = ctx.gateway.services.get(HealthService) if ctx.gateway else None
    if board is None:
        return attempts
    live: list[Attempt] = []
    rest: list[Attempt] = []
    for attempt in attempts:
        name = attempt.backend.name
        state = board.state(name)
        probe = state == "half_open" and not live and board.available(name)
        (live if state == "healthy" or probe else rest).append(attempt)
    return live + rest


@hookimpl(trylast=True)
def modelway_plan(ctx: RequestContext, route: Route) -> Plan | None:
    first = primary(ctx, route)
    attempts = [first] if first else []
    taken: set[str] = {first.backend.name} if first else set()
    attempts += failover_attempts(route, taken)
    failover = route.config.failover
    if failover is None:
        return Plan(healthy_first(ctx, attempts))
    return Plan(healthy_first(ctx, attempts), failover.max_attempts, failover.budget_seconds)
