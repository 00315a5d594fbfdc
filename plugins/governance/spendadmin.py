"""Spend counters in the state store, and `GET /modelway/spend` (an admin endpoint).

Each answered request adds to counters per (day, key, team, model): `usd`, `requests`,
`prompt` and `completion` tokens, and `unpriced` requests. They have no expiry: with Redis
they live in Redis, in the embedded store in its SQLite file (`state.directory`).

`GET /modelway/spend?by=key|team|model|day&since=YYYY-MM-DD&until=YYYY-MM-DD` sums them by
one dimension (default `key`), over whole UTC days.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from modelway import jsonx
from modelway.errors import GatewayError, bad_request
from modelway.ingress import LocalAnswer, LocalEndpoint
from modelway.state import Change, StateStore, StateUnavailable
from modelway.statestore import store_of

if TYPE_CHECKING:
    from modelway.context import RequestContext

PREFIX = "spend:"
METRICS = ("usd", "requests", "prompt", "completion", "unpriced")
DIMENSIONS = ("key", "team", "model", "day")


def _part(value: str | None) -> str:
    return (value or "-").replace("|", "/")


def spend_changes(ctx: RequestContext, cost: float | None, day: str) -> list[Change]:
    """The counters one answered request adds to."""
    principal = ctx.principal
    model = ctx.upstream_model or ctx.model
    who = "|".join(_part(v) for v in (
        principal.key_id if principal else None, principal.team if principal else None, model
    ))  # fmt: skip
    usage = ctx.usage
    amounts = {
        "usd": cost or 0.0,
        "requests": 1.0,
        "prompt": float(usage.prompt_tokens) if usage else 0.0,
        "completion": float(usage.completion_tokens) if usage else 0.0,
        "unpriced": 1.0 if cost is None else 0.0,
    }
    return [Change(f"{PREFIX}{day}:{metric}:{who}", amount)
            for metric, amount in amounts.items() if amount]


async def report(store: StateStore, by: str, since: str, until: str) -> dict[str, Any]:
    """Spend summed by one dimension over the days from `since` to `until` (inclusive)."""
    rows: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(METRICS, 0.0))
    for name in await store.keys(PREFIX):
        parts = name.split(":", 3)
        if len(parts) != 4 or parts[2] not in METRICS:
            continue
        _, day, metric, who = parts
        if (since and day < since) or (until and day > until):
            continue
        key, team, model = ([*who.split("|", 2), "-", "-"])[:3]
        group = {"key": key, "team": team, "model": model, "day": day}[by]
        value = await store.get(name)
        rows[group][metric] += float(value or 0)
    total = dict.fromkeys(METRICS, 0.0)
    for row in rows.values():
        for metric in METRICS:
            total[metric] += row[metric]
    return {"by": by, "since": since or None, "until": until or None,
            "rows": {k: _rounded(v) for k, v in sorted(rows.items())}, "total": _rounded(total)}


def _rounded(row: dict[str, float]) -> dict[str, float | int]:
    return {m: (round(v, 6) if m == "usd" else int(v)) for m, v in row.items()}


async def spend(ctx: RequestContext) -> LocalAnswer:
    query = {k: v[-1] for k, v in parse_qs(ctx.query).items()}
    by = query.get("by", "key")
    if by not in DIMENSIONS:
        raise bad_request(f"by must be one of {', '.join(DIMENSIONS)}", param="by")
    assert ctx.gateway is not None
    try:
        data = await report(store_of(ctx.gateway), by, query.get("since", ""),
                            query.get("until", ""))
    except StateUnavailable:
        raise GatewayError(503, "the state store is unavailable", "server_error",
                           "state_unavailable") from None
    return LocalAnswer(200, jsonx.dumps(data))


def endpoints() -> list[LocalEndpoint]:
    return [LocalEndpoint("GET", "/modelway/spend", spend, "admin.spend", admin=True)]
