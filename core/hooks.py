"""A typed facade over the plugin manager: one method per hook, so no caller uses `pm.hook`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

from modelway.errors import ConfigError

if TYPE_CHECKING:
    from modelway.canonical import UpstreamRequest
    from modelway.context import Attempt, AttemptOutcome, Plan, Principal, RequestContext
    from modelway.extension import IngressAPI, LocalEndpoint, PolicySpec, ProviderSpec
    from modelway.runtime import Gateway, Route


class Hooks:
    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._hook = pm.hook
        self._shut_down = False

    def providers(self) -> dict[str, ProviderSpec]:
        return _unique("provider", self._collect("modelway_providers"))

    def policies(self) -> dict[str, PolicySpec]:
        return _unique("policy", self._collect("modelway_policies"))

    def ingress_apis(self) -> list[IngressAPI]:
        apis: list[IngressAPI] = self._collect("modelway_ingress_apis")
        _unique("ingress API", apis)
        return apis

    def local_endpoints(self) -> list[LocalEndpoint]:
        endpoints: list[LocalEndpoint] = self._collect("modelway_local_endpoints")
        seen: dict[tuple[str, str], LocalEndpoint] = {}
        for endpoint in endpoints:
            key = (endpoint.method, endpoint.path)
            if key in seen:
                raise ConfigError(
                    f"local endpoint {endpoint.method} {endpoint.path} is registered twice: "
                    f"'{seen[key].name}' and '{endpoint.name}'"
                )
            seen[key] = endpoint
        return endpoints

    def configure(self, gateway: Gateway) -> None:
        self._hook.modelway_configure(gateway=gateway)

    def startup(self, gateway: Gateway) -> None:
        self._hook.modelway_startup(gateway=gateway)

    @property
    def shut_down(self) -> bool:
        """Whether `modelway_shutdown` has fired for this configuration."""
        return self._shut_down

    def shutdown(self, gateway: Gateway) -> None:
        """Fires once per configuration: a retired one may be shut down both by the gateway's
        stop and by its retirement timer, whichever comes first."""
        if self._shut_down:
            return
        self._shut_down = True
        self._hook.modelway_shutdown(gateway=gateway)

    def request_received(self, ctx: RequestContext) -> None:
        self._hook.modelway_request_received(ctx=ctx)

    def plan(self, ctx: RequestContext, route: Route) -> Plan | None:
        return self._hook.modelway_plan(ctx=ctx, route=route)

    def upstream_request(
        self, ctx: RequestContext, attempt: Attempt, request: UpstreamRequest
    ) -> None:
        self._hook.modelway_upstream_request(ctx=ctx, attempt=attempt, request=request)

    def attempt_result(
        self, ctx: RequestContext, attempt: Attempt, outcome: AttemptOutcome
    ) -> None:
        self._hook.modelway_attempt_result(ctx=ctx, attempt=attempt, outcome=outcome)

    async def authenticate(self, ctx: RequestContext) -> Principal | None:
        results = list(self._hook.modelway_authenticate(ctx=ctx))
        try:
            while results:
                found = await _resolved(results.pop(0))
                if found is not None:
                    return found
        finally:
            _close(results)
        return None

    async def admit(self, ctx: RequestContext, attempt: Attempt | None) -> None:
        """Every admission runs at once, so that what they reserve in the state store goes in
        one round trip (the store batches one event-loop turn); a refusal is the first in hook
        order, and what the others took is settled when the request is done."""
        pending = [r for r in self._hook.modelway_admit(ctx=ctx, attempt=attempt)
                   if inspect.isawaitable(r)]
        if len(pending) == 1:
            await pending[0]
        elif pending:
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome

    def request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        self._hook.modelway_request_done(ctx=ctx, record=record)

    def _collect(self, hook_name: str) -> list[Any]:
        """Every registration, in plugin registration order (pluggy calls the last first)."""
        results = getattr(self._hook, hook_name)()
        return [item for batch in reversed(results) for item in batch or []]


async def _resolved(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def _close(results: Iterable[Any]) -> None:
    """Coroutines of implementations that will not run now (an earlier one decided)."""
    for result in results:
        if inspect.iscoroutine(result):
            result.close()


def _unique(kind: str, registrations: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for spec in registrations:
        if spec.name in found:
            first, second = _origin(found[spec.name]), _origin(spec)
            raise ConfigError(f"{kind} '{spec.name}' is registered twice: by {first} and {second}")
        found[spec.name] = spec
    return found


def _origin(spec: Any) -> str:
    factory = getattr(spec, "factory", None)
    return getattr(factory, "__module__", None) or type(spec).__module__
