"""What requests cost: the backend's price (its `price:`, else the shipped table) applied to
usage, and the most a request may cost before it is sent (its estimate on the dearest
backend of its route)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from modelway.pricing import Price, cost_usd, price_for

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Backend


def backend_price(backend: Backend, model: str | None) -> Price | None:
    if backend.config.price is not None:
        return backend.config.price
    return _table(backend.provider_name, backend.config.model or model)


@functools.lru_cache(maxsize=4096)
def _table(provider: str, model: str | None) -> Price | None:
    return price_for(provider, model)


def served_cost(ctx: RequestContext) -> float | None:
    """The cost of the answer, or None when its model has no price."""
    if ctx.served_by is None or ctx.usage is None:
        return 0.0
    model = ctx.upstream_model or ctx.served_by.model or ctx.model
    price = backend_price(ctx.served_by.backend, model)
    return None if price is None else cost_usd(price, ctx.usage)


def route_backends(ctx: RequestContext) -> list[Backend]:
    route = ctx.route
    if route is None:
        return []
    found = {id(t.backend): t.backend for t in route.targets}
    for group in route.groups:
        found.update({id(b): b for b in group})
    return list(found.values())


def estimated_cost(ctx: RequestContext, prompt: int, output: int) -> float:
    """The estimate at the dearest priced backend of the route (0 when none is priced)."""
    worst = 0.0
    for backend in route_backends(ctx):
        price = backend_price(backend, ctx.model)
        if price is not None:
            rates = price.rates_for(prompt)
            worst = max(worst, (prompt * rates.input + output * rates.output) / 1_000_000)
    return worst


def unpriced_notices(backends: dict[str, Backend]) -> list[str]:
    """`modelway check` notes: backends whose model the price table does not know."""
    notes = []
    for name, backend in backends.items():
        model = backend.config.model
        if backend.config.price is None and model and backend_price(backend, model) is None:
            notes.append(
                f"backend '{name}': no price for {backend.provider_name} model '{model}'; its "
                "requests are counted in tokens only (set `price:` on the backend)"
            )
    return notes
