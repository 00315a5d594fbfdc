"""Built-in plugin `budgets`: what every request costs, spend, and USD budgets.

Every answered request is priced (the backend's `price:`, else the shipped price table) and
its cost goes into the access log (`cost_usd`; `priced: false` for a model the table does not
know, counted in tokens only), the statistics, and the spend counters of the state store
(`modelway spend`: by key, team, model and day). Budgets of a key and its team (the `keys`
plugin's grants: `budget: {usd, window}`, window `day`, `week`, `month` or `<N>h`, UTC) are
reserved before the request goes on, at its estimate on the dearest backend of its route,
and settled with the real cost when it ends. Over budget: 429 with OpenAI's
`insufficient_quota` code, or the equivalent in the client's API.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.plugins.governance.costs import estimated_cost, served_cost, unpriced_notices
from modelway.plugins.governance.errors import duration, over_budget
from modelway.plugins.governance.estimate import request_tokens
from modelway.plugins.governance.periods import period, today
from modelway.plugins.governance.records import Budget, FailMode
from modelway.plugins.governance.registry import Access
from modelway.plugins.governance.reserve import Held, Reserver, ReservingPlugin, refused
from modelway.plugins.governance.spendadmin import endpoints, spend_changes
from modelway.state import Ask, Reservation
from modelway.statestore import store_of

if TYPE_CHECKING:
    from modelway.context import Attempt, RequestContext
    from modelway.ingress import LocalEndpoint
    from modelway.runtime import Gateway

STATE = "budgets"
EXHAUSTED_PROBE = 1e-9
"""Reserved when the estimate is 0 (an unpriced model), so a spent budget still refuses."""


class Settings(BaseModel):
    """`plugins: {budgets: {...}}`."""

    model_config = ConfigDict(extra="forbid")
    default_output_tokens: int = Field(1024, ge=0)
    on_store_error: FailMode = "open"


def _budgets(ctx: RequestContext) -> list[tuple[str, str, Budget]]:
    access = ctx.principal.grants if ctx.principal else None
    if not isinstance(access, Access):
        return []
    found = [("key", access.key.id or "", b) for b in access.key.budgets]
    if access.team is not None:
        found += [("team", access.key.team or "", b) for b in access.team.budgets]
    return found


class BudgetsPlugin(ReservingPlugin):
    """Prices every request, counts spend, and holds keys and teams to their budgets."""

    Settings = Settings

    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings()

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        self.settings = gateway.plugin_settings("budgets") or Settings()
        self.reserver = Reserver("budgets", lambda: store_of(gateway))
        gateway.notices.extend(unpriced_notices(gateway.backends))

    @hookimpl
    def modelway_local_endpoints(self) -> list[LocalEndpoint]:
        return endpoints()

    @hookimpl
    def modelway_admit(
        self, ctx: RequestContext, attempt: Attempt | None
    ) -> Awaitable[None] | None:
        """Reserved at once in an in-process store; else an awaitable (see `limits`)."""
        budgets = _budgets(ctx) if attempt is None else []
        if not budgets or self.reserver is None:
            return None
        prompt, output = request_tokens(ctx, self.settings.default_output_tokens)
        amount = max(estimated_cost(ctx, prompt, output), EXHAUSTED_PROBE)
        asks = []
        for kind, name, budget in budgets:
            period_id, left = period(budget.window)
            key = f"budget:{kind}:{name}:{budget.window}:{period_id}"
            asks.append(Ask(key, amount, budget.usd, left))
        found = self.reserver.take_now(asks)
        if found is None:
            return self._reserve(ctx, budgets, asks)
        _hold(ctx, budgets, asks, found, False)
        return None

    async def _reserve(
        self, ctx: RequestContext, budgets: list[tuple[str, str, Budget]], asks: list[Ask]
    ) -> None:
        assert self.reserver is not None
        closed = any((b.on_store_error or self.settings.on_store_error) == "closed"
                     for _, _, b in budgets)
        found, local = await self.reserver.take(asks, closed)
        _hold(ctx, budgets, asks, found, local)

    @hookimpl(tryfirst=True)
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        cost = served_cost(ctx)
        if ctx.usage is not None:
            record["cost_usd"] = round(cost or 0.0, 8)
            if cost is None:
                record["priced"] = False
        held: list[Held] = ctx.plugin_state.pop(STATE, [])
        if self.reserver is None:
            return
        for one in held:
            actual = cost if cost is not None else 0.0
            if ctx.usage is None and ctx.served_by is not None:
                actual = one.ask.amount  # answered, usage unknown: keep the estimate
            self.reserver.settle(one, actual)
        if ctx.served_by is not None:
            self.reserver.count(spend_changes(ctx, cost, today()))


def _hold(
    ctx: RequestContext, budgets: list[tuple[str, str, Budget]], asks: list[Ask],
    found: list[Reservation], local: bool,
) -> None:
    """Keep what was taken (to settle), or refuse with the first budget that is spent."""
    held = [Held(a, r, local) for a, r in zip(asks, found, strict=True)]
    failed = refused(held)
    if failed is not None:
        kind, name, budget = budgets[held.index(failed)]
        wait = failed.reservation.reset_seconds
        raise over_budget(
            f"the {kind} '{name}' has used its budget of ${budget.usd:g} per "
            f"{budget.window}; it resets in {duration(wait)}",
            wait,
        )
    ctx.plugin_state[STATE] = held
