"""Builds the plugin manager: hookspecs, built-ins, then entry points, then `check_pending()`.

Built-in plugins are loaded by name exactly like third-party ones (entry-point group
`modelway`). A plugin is a module, an object, or a class (instantiated once per gateway, so
two gateways in one process never share plugin state). It may carry a pydantic model named
`Settings` for its config section.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from modelway import hookspecs
from modelway.errors import ConfigError
from modelway.markers import PROJECT

ENTRY_POINT_GROUP = "modelway"

BUILTIN_PLUGINS: dict[str, str] = {
    "openai_api": "modelway.plugins.ingress.openai",
    "router": "modelway.plugins.traffic.router",
    "access_log": "modelway.plugins.ops.access_log:AccessLogPlugin",
    "openai": "modelway.plugins.providers.openai",
    "mock": "modelway.plugins.providers.mock",
    "anthropic_api": "modelway.plugins.ingress.anthropic",
    "gemini_api": "modelway.plugins.ingress.gemini",
    "responses_api": "modelway.plugins.ingress.responses:ResponsesPlugin",
    "anthropic": "modelway.plugins.providers.anthropic",
    "gemini": "modelway.plugins.providers.gemini",
    "vertex": "modelway.plugins.providers.vertex",
    "azure": "modelway.plugins.providers.azure",
    "bedrock": "modelway.plugins.providers.bedrock",
    "enrich": "modelway.plugins.policies.enrich",
    "pii_guard": "modelway.plugins.policies.pii_guard:PiiGuardPlugin",
    "webhook_guard": "modelway.plugins.policies.webhook_guard",
    "moderation_guard": "modelway.plugins.policies.moderation_guard",
    "health": "modelway.plugins.traffic.health:HealthPlugin",
    "stats": "modelway.plugins.ops.stats:StatsPlugin",
    "admin_api": "modelway.plugins.ops.admin_api",
    "keys": "modelway.plugins.governance.keys:KeysPlugin",
    "limits": "modelway.plugins.governance.limits:LimitsPlugin",
    "budgets": "modelway.plugins.governance.budgets:BudgetsPlugin",
    "metrics": "modelway.plugins.ops.metrics:MetricsPlugin",
    "tracing": "modelway.plugins.ops.tracing:TracingPlugin",
    "dashboard": "modelway.plugins.ops.dashboard:DashboardPlugin",
}
# Always enabled: the gateway does not work without an API, a router and its access log.
CORE_PLUGINS: tuple[str, ...] = ("openai_api", "router", "access_log")
# Enabled only when the configuration names them: `keys` makes every request need a key;
# `metrics`, `tracing` (the `otel` extra) and `dashboard` are asked for by name.
OPT_IN_PLUGINS: tuple[str, ...] = ("keys", "limits", "budgets", "metrics", "tracing", "dashboard")


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from, and how to import it."""

    name: str
    origin: str
    target: str
    loader: Callable[[], Any]

    def load(self) -> Any:
        try:
            plugin = self.loader()
            return plugin() if isinstance(plugin, type) else plugin
        except Exception as exc:
            raise ConfigError(
                f"plugin '{self.name}' ({self.origin}, {self.target}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def available_plugins() -> dict[str, PluginSource]:
    """Every plugin that could be enabled: built-ins first, then installed entry points."""
    found = {
        name: PluginSource(name, "built-in", module, _module_loader(module))
        for name, module in BUILTIN_PLUGINS.items()
    }
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist
        origin = f"{dist.name} {dist.version}" if dist else "unknown distribution"
        if entry.name in found:
            raise ConfigError(
                f"two plugins are named '{entry.name}': {found[entry.name].origin} "
                f"({found[entry.name].target}) and {origin} ({entry.value})"
            )
        found[entry.name] = PluginSource(entry.name, origin, entry.value, entry.load)
    return found


def _module_loader(target: str) -> Callable[[], Any]:
    module, _, attribute = target.partition(":")

    def load() -> Any:
        loaded = importlib.import_module(module)
        return getattr(loaded, attribute) if attribute else loaded

    return load


def enabled_names(configured: Iterable[str] | None) -> list[str]:
    """Core plugins plus the configured ones; with no `plugins` key, every built-in."""
    if configured is None:
        names = [n for n in BUILTIN_PLUGINS if n not in OPT_IN_PLUGINS]
    else:
        names = list(configured)
    return [*CORE_PLUGINS, *(n for n in names if n not in CORE_PLUGINS)]


def make_plugin_manager(
    names: Iterable[str], extra: Iterable[tuple[str, object]] = ()
) -> pluggy.PluginManager:
    """A manager with the named plugins (and any `extra` objects) registered and checked."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    sources = available_plugins()
    for name in names:
        if name not in sources:
            known = ", ".join(sorted(sources))
            raise ConfigError(f"plugins: unknown plugin '{name}' (available: {known})")
        pm.register(sources[name].load(), name=name)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin '{pm.get_name(exc.plugin)}': {exc}") from None
    return pm
