"""What one request adds to the metrics, read from its context when it is done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelway.plugins.governance.costs import served_cost
from modelway.plugins.ops.metrics.families import Families
from modelway.plugins.ops.metrics.labels import (
    NONE,
    Capped,
    ModelLabels,
    operation_of,
    provider_of,
    status_class,
)
from modelway.services import HealthService

if TYPE_CHECKING:
    from modelway.context import Attempt, AttemptOutcome, RequestContext

STATE = "metrics"
REJECTIONS = {"rate_limit_exceeded": "rate_limit", "insufficient_quota": "budget"}
"""Governance error codes counted as rejections, by reason."""


class Recorder:
    """Turns requests into metric values; one per gateway's services (outlives reloads)."""

    def __init__(self, families: Families) -> None:
        self.families = families
        self.models = ModelLabels()
        self.error_types = Capped()
        self.guard_names = Capped()
        self.entity_types = Capped()
        self.routes = Capped()
        self._ejections: dict[str, int] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once per label set (the hot path)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def received(self, ctx: RequestContext) -> None:
        self.families.inflight.inc()
        ctx.plugin_state[STATE] = {"inflight": True}

    def attempt(self, ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome) -> None:
        self.child(self.families.attempts, attempt.backend.name, status_class(outcome.error)).inc()
        state = ctx.plugin_state.get(STATE)
        if outcome.ok and ctx.streaming and state is not None and not state.get("stream"):
            state["stream"] = True
            self.families.streams.inc()
        if not outcome.ok and ctx.gateway is not None:
            health = ctx.gateway.services.get(HealthService)  # set up in any plugin order
            if health is not None:
                self._count_ejection(health, attempt.backend.name)

    def done(self, ctx: RequestContext, record: Mapping[str, object]) -> None:
        state = ctx.plugin_state.pop(STATE, None) or {}
        if state.get("inflight"):
            self.families.inflight.dec()
        if state.get("stream"):
            self.families.streams.dec()
        if ctx.route is None and ctx.api is None:
            return  # health probes, the metrics themselves, unknown paths
        route = self.routes(ctx.route.name) if ctx.route else NONE
        served = ctx.served_by or (ctx.attempts[-1] if ctx.attempts else None)
        backend = served.backend.name if served else NONE
        self.child(
            self.families.requests,
            route, backend, (served.variant or NONE) if served else NONE,
            ctx.api.name if ctx.api else NONE, str(ctx.status or 0),
        ).inc()  # fmt: skip
        self._failovers(ctx, route)
        self._guards(ctx)
        self._rejection(ctx, route)
        if ctx.route is None or ctx.call is None:
            return
        self._gen_ai(ctx, served, route, record)
        self._overhead(ctx)

    def _gen_ai(
        self, ctx: RequestContext, served: Attempt | None, route: str, record: Mapping[str, object]
    ) -> None:
        provider = served.backend.provider_name if served else ""
        common = (
            operation_of(ctx), provider_of(provider), self.models(provider, ctx.model),
            self.models(provider, ctx.upstream_model) if served else NONE,
        )  # fmt: skip
        timings = ctx.timings
        error = ctx.error.code or ctx.error.type if ctx.error is not None else None
        if timings.end is not None:
            duration = self.child(self.families.request_duration, *common, self.error_types(error))
            duration.observe(timings.end - timings.start)
        usage = ctx.usage
        if usage is not None:
            tokens = self.families.token_usage
            self.child(tokens, *common, "input").observe(usage.prompt_tokens)
            self.child(tokens, *common, "output").observe(usage.completion_tokens)
            self._cost(ctx, served, route, common[3], record)
        if ctx.streaming and timings.first_byte is not None and error is None:
            self.child(self.families.ttft, *common).observe(timings.first_byte - timings.start)
            end = timings.upstream_end or timings.end
            tokens = usage.completion_tokens if usage is not None else 0
            if end is not None and tokens > 1:
                per_token = (end - timings.first_byte) / (tokens - 1)
                self.child(self.families.tpot, *common).observe(max(0.0, per_token))

    def _cost(
        self,
        ctx: RequestContext,
        served: Attempt | None,
        route: str,
        model: str,
        record: Mapping[str, object],
    ) -> None:
        if served is None or ctx.usage is None:
            return
        cost = record.get("cost_usd")  # the `budgets` plugin's
        if not isinstance(cost, int | float) or isinstance(cost, bool):
            cost = served_cost(ctx) or 0.0  # the same price: the backend's `price:`, the table
        if cost > 0:
            self.child(self.families.cost, route, served.backend.name, model).inc(cost)

    def _overhead(self, ctx: RequestContext) -> None:
        timings = ctx.timings
        if timings.end is None:
            return
        total = timings.end - timings.start
        if timings.upstream_start is not None:
            upstream_end = timings.upstream_end or timings.end
            total -= max(0.0, upstream_end - timings.upstream_start)
        api = ctx.api.name if ctx.api else NONE
        stream = "true" if ctx.streaming else "false"
        self.child(self.families.overhead, api, stream).observe(max(0.0, total))

    def _failovers(self, ctx: RequestContext, route: str) -> None:
        """Every attempt but the last that failed: the gateway moved on because of it."""
        for attempt in ctx.attempts[:-1]:
            outcome = attempt.outcome
            if outcome is not None and not outcome.ok:
                trigger = status_class(outcome.error)
                self.child(self.families.failovers, route, attempt.backend.name, trigger).inc()

    def _guards(self, ctx: RequestContext) -> None:
        entries = ctx.annotations.get("guards")
        if not isinstance(entries, list):
            return
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            guard = self.guard_names(str(entry.get("guard") or "unknown"))
            stage = str(entry.get("stage") or NONE)
            action = str(entry.get("action") or "unknown")
            for entity in _entity_types(entry) or [NONE]:
                labels = (guard, stage, self.entity_types(entity), action)
                self.child(self.families.guards, *labels).inc()

    def _rejection(self, ctx: RequestContext, route: str) -> None:
        code = ctx.error.code if ctx.error is not None else None
        reason = REJECTIONS.get(code or "")
        if reason is not None:
            self.child(self.families.rejections, route, reason).inc()

    def _count_ejection(self, health: HealthService, backend: str) -> None:
        total = health.ejections(backend)
        seen = self._ejections.get(backend, 0)
        if total > seen:
            self.child(self.families.ejections, backend).inc(total - seen)
        self._ejections[backend] = total


def _entity_types(entry: dict[str, Any]) -> list[str]:
    """The entity types (PII guard) or categories (moderation) a decision names."""
    for key in ("entities", "categories"):
        found = entry.get(key)
        if isinstance(found, dict) and found:
            return [str(name) for name in found]
    return []
