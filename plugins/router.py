"""The default router: a weighted pick over a route's targets, sticky when a cohort is set.

With `split.cohort` (`header:<name>`, `field:<name>` or `key`), the cohort value is hashed to
a point on the weight line, so the same user always lands on the same target; without one
(or when the request carries no value), the pick is random by weight.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from modelway import hookimpl
from modelway.context import Attempt, Plan, RequestContext
from modelway.runtime import Route, Target


def cohort_value(ctx: RequestContext, cohort: str) -> str | None:
    if cohort == "key":
        return ctx.client.api_key
    kind, _, name = cohort.partition(":")
    if kind == "header":
        return ctx.headers.get(name.lower()) or None
    value: Any = ctx.request.body.get(name) if ctx.request else None
    return str(value) if value not in (None, "") else None


def point(value: str | None) -> float:
    """A position in [0, 1): stable for a value, random without one."""
    if value is None:
        return random.random()
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


@hookimpl(trylast=True)
def modelway_plan(ctx: RequestContext, route: Route) -> Plan | None:
    targets = route.targets
    if len(targets) == 1:
        target = targets[0]
        return Plan([Attempt(target.backend, target.model)])
    split = route.config.split
    value = cohort_value(ctx, split.cohort) if split and split.cohort else None
    target = pick(targets, point(value))
    return Plan([Attempt(target.backend, target.model, variant=target.backend.name)])
