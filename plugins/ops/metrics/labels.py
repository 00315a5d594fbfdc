"""Bounded label values for the metrics: names from the configuration, never free text.

A Prometheus series exists for every distinct label set, so a label must never carry a key, a
user id, a prompt or whatever a client sends. Models are labelled only when the configuration
or the price table knows them (else `_other`); other open-ended values (error codes from
upstreams, guard categories) are kept up to a fixed number of distinct values, then `_other`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelway.pricing import price_for

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway

OTHER = "_other"
NONE = ""
MAX_DISTINCT = 64
"""Distinct values an open-ended label may take before the rest are `_other`."""

PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
}
"""modelway's provider types as OpenTelemetry's `gen_ai.provider.name` values."""

OPERATION_NAMES = {"chat": "chat", "embeddings": "embeddings"}
"""Operations as `gen_ai.operation.name` (the rest keep modelway's own name)."""


class Capped:
    """Values of one open-ended label: the first `limit` distinct ones, then `_other`."""

    def __init__(self, limit: int = MAX_DISTINCT) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return NONE
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value


def known_models(gateway: Gateway) -> frozenset[str]:
    """Every model name the configuration itself names (routes, backends, targets)."""
    names: set[str] = set(gateway.exposed_models())
    for backend in gateway.backends.values():
        if backend.config.model:
            names.add(backend.config.model)
    for route in gateway.routes:
        for target in getattr(route, "targets", ()) or ():
            model = getattr(target, "model", None)
            if isinstance(model, str):
                names.add(model)
    return frozenset(names)


class ModelLabels:
    """Model label values: configured or priced names, else `_other` (memoised)."""

    def __init__(self) -> None:
        self.known: frozenset[str] = frozenset()
        self._cache: dict[tuple[str, str], str] = {}

    def configure(self, gateway: Gateway) -> None:
        self.known = known_models(gateway)
        self._cache = {}

    def __call__(self, provider: str, model: str | None) -> str:
        if not model:
            return NONE
        if model in self.known:
            return model
        key = (provider, model)
        found = self._cache.get(key)
        if found is None:
            priced = len(self._cache) < 4096 and price_for(provider, model) is not None
            found = model if priced else OTHER
            if len(self._cache) < 4096:
                self._cache[key] = found
        return found


def operation_of(ctx: RequestContext) -> str:
    operation = ctx.call.operation.value if ctx.call is not None else "other"
    return OPERATION_NAMES.get(operation, operation)


def provider_of(provider: str | None) -> str:
    if not provider:
        return NONE
    return PROVIDER_NAMES.get(provider, provider)


def status_class(error: str | None) -> str:
    """An attempt's outcome as a trigger name: `http_503` is `5xx`, `http_429` is `429`."""
    if not error:
        return "ok"
    if error.startswith("http_"):
        code = error[5:]
        if code == "429":
            return "429"
        return f"{code[:1]}xx" if code[:1].isdigit() else OTHER
    return error
