"""Built-in plugin `limits`: requests and tokens per minute, per key, team, route and backend.

Limits of a key and its team come from the `keys` plugin's grants; route and backend limits
from this plugin's settings. Before a request goes on, every limit that applies is reserved
in one atomic call to the state store: one request, and its estimated tokens (prompt tokens
from the tokenizer, plus its output cap or `default_output_tokens`). A backend's limits are
reserved per attempt, so a backend at its provider's quota is skipped for the next one in the
plan. When the answer ends (streams included) the reservation is settled with the real usage,
so concurrent requests overshoot a limit by at most what those in flight reserved. Over a
limit: 429 in the client's shape with `retry-after`; OpenAI-style `x-ratelimit-*` headers go
with every answer. A window starts with its first request and lasts a minute.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.plugins.governance.errors import limit_headers, rate_limited
from modelway.plugins.governance.estimate import request_tokens
from modelway.plugins.governance.records import FailMode, Limits
from modelway.plugins.governance.registry import Access
from modelway.plugins.governance.reserve import Held, Reserver, ReservingPlugin, refused
from modelway.state import Ask, Reservation
from modelway.statestore import store_of

if TYPE_CHECKING:
    from modelway.context import Attempt, RequestContext
    from modelway.runtime import Gateway

WINDOW_SECONDS = 60.0
STATE = "limits"


class Settings(BaseModel):
    """`plugins: {limits: {...}}`."""

    model_config = ConfigDict(extra="forbid")
    routes: dict[str, Limits] = Field(default_factory=dict)
    """Limits per route name."""
    backends: dict[str, Limits] = Field(default_factory=dict)
    """Limits per backend name (to stay under a provider's quota)."""
    default_output_tokens: int = Field(1024, ge=0)
    """The output a request without its own cap is assumed to use, until it is settled."""
    on_store_error: FailMode = "open"


class _Request:
    """What one request reserved."""

    __slots__ = ("estimate", "held")

    def __init__(self) -> None:
        self.estimate: int | None = None
        self.held: list[Held] = []


def _scopes(ctx: RequestContext, settings: Settings) -> list[tuple[str, Limits]]:
    found: list[tuple[str, Limits]] = []
    access = ctx.principal.grants if ctx.principal else None
    if isinstance(access, Access):
        if access.key.limits:
            found.append((f"key {access.key.id}", access.key.limits))
        if access.team and access.team.limits:
            found.append((f"team {access.key.team}", access.team.limits))
    if ctx.route is not None and ctx.route.name in settings.routes:
        found.append((f"route {ctx.route.name}", settings.routes[ctx.route.name]))
    return found


class LimitsPlugin(ReservingPlugin):
    """Reserves rate limits before requests and attempts; settles them when they end."""

    Settings = Settings

    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings()

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        settings: Settings = gateway.plugin_settings("limits") or Settings()
        routes = {r.name or f"route{i}" for i, r in enumerate(gateway.config.routes)}
        problems = [(("plugins", "limits", "routes", name), f"no route is named '{name}'")
                    for name in settings.routes if name not in routes]
        problems += [(("plugins", "limits", "backends", name), f"no backend is named '{name}'")
                     for name in settings.backends if name not in gateway.config.backends]
        if problems:
            raise gateway.source.error(problems)
        self.settings = settings
        self.reserver = Reserver("rate limits", lambda: store_of(gateway))

    @hookimpl
    def modelway_admit(
        self, ctx: RequestContext, attempt: Attempt | None
    ) -> Awaitable[None] | None:
        """Reserved at once in an in-process store; else an awaitable (the store's round
        trip, which `Hooks.admit` runs with the other plugins' in one event-loop turn)."""
        if attempt is None:
            scopes = _scopes(ctx, self.settings)
        else:
            limits = self.settings.backends.get(attempt.backend.name)
            scopes = [(f"backend {attempt.backend.name}", limits)] if limits else []
        if not scopes:
            return None
        assert self.reserver is not None
        state = ctx.plugin_state.setdefault(STATE, _Request())
        asks, tokens = self._asks(ctx, state, scopes)
        found = self.reserver.take_now(asks)
        if found is None:
            return self._reserve(ctx, state, scopes, attempt, asks, tokens)
        _hold(ctx, state, scopes, attempt, asks, tokens, found, False)
        return None

    def _asks(
        self, ctx: RequestContext, state: _Request, scopes: list[tuple[str, Limits]]
    ) -> tuple[list[Ask], list[bool]]:
        asks, tokens = [], []
        for scope, limits in scopes:
            name = "limits:" + scope.replace(" ", ":")
            if limits.requests_per_minute:
                asks.append(Ask(name + ":rpm", 1, limits.requests_per_minute, WINDOW_SECONDS))
                tokens.append(False)
            if limits.tokens_per_minute:
                amount = self._estimate(ctx, state)
                asks.append(Ask(name + ":tpm", amount, limits.tokens_per_minute, WINDOW_SECONDS))
                tokens.append(True)
        return asks, tokens

    async def _reserve(
        self, ctx: RequestContext, state: _Request, scopes: list[tuple[str, Limits]],
        attempt: Attempt | None, asks: list[Ask], tokens: list[bool],
    ) -> None:
        assert self.reserver is not None
        closed = any((lim.on_store_error or self.settings.on_store_error) == "closed"
                     for _, lim in scopes)
        found, local = await self.reserver.take(asks, closed)
        _hold(ctx, state, scopes, attempt, asks, tokens, found, local)

    def _estimate(self, ctx: RequestContext, state: _Request) -> int:
        if state.estimate is None:
            prompt, output = request_tokens(ctx, self.settings.default_output_tokens)
            state.estimate = prompt + output
        return state.estimate

    @hookimpl
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        state: _Request | None = ctx.plugin_state.pop(STATE, None)
        if state is None or self.reserver is None:
            return
        used = ctx.usage.total_tokens if ctx.usage is not None else None
        for held in state.held:
            if not held.tokens:
                continue
            served = ctx.served_by is not None and (
                held.attempt is None or held.attempt is ctx.served_by
            )
            actual = (used if used is not None else held.ask.amount) if served else 0
            self.reserver.settle(held, actual)


def _hold(
    ctx: RequestContext, state: _Request, scopes: list[tuple[str, Limits]],
    attempt: Attempt | None, asks: list[Ask], tokens: list[bool], found: list[Reservation],
    local: bool,
) -> None:
    """Keep what was taken (to settle), or refuse with the first limit that did not fit."""
    held = [Held(a, r, local, t, attempt) for a, r, t in zip(asks, found, tokens, strict=True)]
    failed = refused(held)
    if failed is not None:
        raise _over(failed, scopes)
    state.held.extend(held)
    ctx.response_headers.update(_headers(state.held))


def _family(held: Held) -> str:
    return "tokens" if held.tokens else "requests"


def _over(held: Held, scopes: list[tuple[str, Limits]]) -> Exception:
    ask, found = held.ask, held.reservation
    family = _family(held)
    scope = ask.key.split(":")[1:3]
    who = " ".join(scope)
    wait = max(found.reset_seconds, 0.001)
    if ask.amount > ask.limit:
        message = (f"this request needs about {int(ask.amount)} {family}, more than the "
                   f"{who} limit of {int(ask.limit)} {family} per minute")
    else:
        message = (f"rate limit of {int(ask.limit)} {family} per minute reached for {who}; "
                   f"retry in {wait:.1f}s")
    headers = limit_headers(family, ask.limit, found.remaining, wait)
    headers["retry-after"] = str(max(1, math.ceil(wait)))
    return rate_limited(message, family, headers)


def _headers(held: list[Held]) -> dict[str, str]:
    """The tightest limit of each family (the least remaining), as OpenAI-style headers."""
    out: dict[str, str] = {}
    for family in ("requests", "tokens"):
        mine = [h for h in held if _family(h) == family]
        if mine:
            tight = min(mine, key=lambda h: h.reservation.remaining)
            found = tight.reservation
            out.update(limit_headers(family, found.limit, found.remaining, found.reset_seconds))
    return out
