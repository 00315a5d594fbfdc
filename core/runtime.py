"""The gateway's resolved runtime: enabled plugins, backends with their providers, routes.

`build_gateway` is the second half of configuration checking: it validates every section
that belongs to a plugin (plugin settings, provider options, route policies) with that
plugin's own model, and resolves names (backends a route targets, providers, policies).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from modelway.clients import KeyCheck
from modelway.config import BackendConfig, GatewayConfig, RouteConfig
from modelway.configload import ConfigSource, Loc, validation_problems
from modelway.errors import ConfigError
from modelway.extension import IngressAPI, LocalEndpoint, Policy, PolicySpec, ProviderSpec
from modelway.hooks import Hooks
from modelway.pluginmanager import available_plugins, enabled_names, make_plugin_manager
from modelway.routes import Backend, Route, Target, is_glob
from modelway.services import Services
from modelway.statestore import readiness_probe
from modelway.wire import Call

__all__ = ["Backend", "Gateway", "Route", "Target", "build_gateway", "load_gateway"]


@dataclass(eq=False)
class Gateway:
    """Everything resolved from one configuration; rebuilt whole on reload."""

    config: GatewayConfig
    source: ConfigSource
    pm: pluggy.PluginManager
    hooks: Hooks
    plugin_names: list[str]
    apis: list[IngressAPI]
    providers: dict[str, ProviderSpec]
    policy_specs: dict[str, PolicySpec]
    backends: dict[str, Backend]
    routes: list[Route]
    settings: dict[str, BaseModel | None] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    services: Services = field(default_factory=Services)
    """Typed services that outlive a configuration reload (backend health, statistics, the
    state store): the engine hands the same registry to every Gateway it serves."""
    local_endpoints: list[LocalEndpoint] = field(default_factory=list)
    key_check: KeyCheck = field(default_factory=lambda: KeyCheck([]))
    """The gateway's client keys (`gateway.api_keys`); empty means no key is needed."""
    admin_check: KeyCheck = field(default_factory=lambda: KeyCheck([]))
    """The keys admin endpoints need (`gateway.admin_keys`, else the client keys)."""
    readiness_probes: list[Callable[[], Awaitable[str | None]]] = field(default_factory=list)
    """Checks `/readyz` runs: each answers None when fine, else what is wrong."""

    def plugin_settings(self, name: str) -> Any:
        """The validated settings of plugin `name` (its `Settings` model), or None."""
        return self.settings.get(name)

    def match_route(
        self, call: Call | str, path: str, headers: Mapping[str, str], host: str = ""
    ) -> Route | None:
        """The first route for the request. A call without a model (a pass-through endpoint
        such as `/v1/files`) matches only routes that name its path or host (`match.path`,
        `match.host`), never a route by model alone."""
        model = call if isinstance(call, str) else call.model
        for route in self.routes:
            match = route.config.match
            if not model and match.path is None and match.host is None:
                continue
            if route.matches(model, path, headers, host):
                return route
        return None

    def host_route(self, call: Call, host: str) -> Route | None:
        """Forward mode, a pass-through call (`/v1/files`, `/v1/models` ...) no route takes:
        the first route for `host` whose backend forwards raw requests, one with the
        gateway's own credentials first (the key is swapped, as for every other call)."""
        found = [
            route
            for route in self.routes
            if route.config.match.host is not None
            and route.matches_host(host)
            and route.targets
            and call.wire in route.targets[0].backend.provider.native_wires(call.model)
        ]
        own = [r for r in found if r.targets[0].backend.config.auth == "gateway"]
        return (own or found or [None])[0]

    def intercept_hosts(self) -> list[str]:
        """Host globs the forward proxy intercepts; all others pass through undecrypted."""
        hosts = dict.fromkeys(self.config.gateway.intercept_hosts)
        for spec in self.providers.values():
            hosts.update(dict.fromkeys(spec.default_hosts))
        return list(hosts)

    def local_endpoint(self, method: str, path: str) -> LocalEndpoint | None:
        return next((e for e in self.local_endpoints if e.matches(method, path)), None)

    def policies(self) -> list[Policy]:
        """Every policy of every route, each once."""
        return list({id(p): p for route in self.routes for p in route.policies}.values())

    async def readiness(self) -> list[str]:
        """What keeps the gateway from serving (empty when ready): services that can fail
        (the state store) are asked."""
        problems: list[str] = []
        for probe in self.readiness_probes:
            problem = await probe()
            if problem:
                problems.append(problem)
        return problems

    def exposed_models(self) -> list[str]:
        """The model names clients can ask for by exact name, in route order."""
        seen: dict[str, None] = {}
        for route in self.routes:
            for model in route.config.match.models:
                if not is_glob(model):
                    seen.setdefault(model)
        return list(seen)


def build_gateway(
    config: GatewayConfig,
    source: ConfigSource,
    extra_plugins: Iterable[tuple[str, object]] = (),
    services: Services | None = None,
) -> Gateway:
    """Resolve `config` into a Gateway, or raise ConfigError naming every problem."""
    names = enabled_names(config.plugins.keys() if config.plugins is not None else None)
    _check_plugin_names(names, source, {name for name, _ in extra_plugins})
    pm = make_plugin_manager(names, extra_plugins)
    hooks = Hooks(pm)
    problems: list[tuple[Loc, str]] = []
    settings = _plugin_settings(pm, names, config, problems)
    providers, policy_specs = hooks.providers(), hooks.policies()
    backends, notices = _backends(config, source, providers, problems)
    routes = _routes(config, source, backends, policy_specs, problems, notices)
    if problems:
        raise source.error(problems)
    gateway = Gateway(
        config,
        source,
        pm,
        hooks,
        names,
        hooks.ingress_apis(),
        providers,
        policy_specs,
        backends,
        routes,
        settings,
        notices,
        Services() if services is None else services,
        hooks.local_endpoints(),
        _key_check(config.gateway.api_keys),
        _key_check(config.gateway.admin_keys or config.gateway.api_keys),
    )
    gateway.readiness_probes.append(readiness_probe(gateway))
    try:
        hooks.configure(gateway)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"{source.name}: a plugin rejected the configuration: {type(exc).__name__}: {exc}"
        ) from exc
    return gateway


def _key_check(keys: list[Any]) -> KeyCheck:
    return KeyCheck(key.get_secret_value() for key in keys)


def _check_plugin_names(names: list[str], source: ConfigSource, extra: set[str]) -> None:
    known = available_plugins()
    unknown = [n for n in names if n not in known and n not in extra]
    if unknown:
        listing = ", ".join(sorted(known))
        raise source.error(
            [(("plugins", n), f"unknown plugin '{n}' (available: {listing})") for n in unknown]
        )


def _validate(model: type[BaseModel], data: Any, loc: Loc, problems: list) -> BaseModel | None:
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, loc))
        return None


def _plugin_settings(
    pm: pluggy.PluginManager, names: list[str], config: GatewayConfig, problems: list
) -> dict[str, BaseModel | None]:
    sections = config.plugins or {}
    out: dict[str, BaseModel | None] = {}
    for name in names:
        model = getattr(pm.get_plugin(name), "Settings", None)
        section = sections.get(name)
        if model is None:
            if section:
                problems.append((("plugins", name), f"plugin '{name}' takes no settings"))
            out[name] = None
        else:
            out[name] = _validate(model, section, ("plugins", name), problems)
    return out


def _backends(
    config: GatewayConfig, source: ConfigSource, providers: dict[str, ProviderSpec], problems: list
) -> tuple[dict[str, Backend], list[str]]:
    backends: dict[str, Backend] = {}
    notices: list[str] = []
    for name, backend in config.backends.items():
        loc = ("backends", name)
        spec = providers.get(backend.provider)
        if spec is None:
            known = ", ".join(sorted(providers)) or "none"
            problems.append(
                (
                    (*loc, "provider"),
                    f"unknown provider {source.show((*loc, 'provider'), backend.provider)} "
                    f"(enabled providers: {known}; is its plugin enabled?)",
                )
            )
            continue
        keyless = not backend.has_api_key and backend.auth == "gateway"
        if keyless and backend.optional:
            notices.append(f"backend '{name}' is skipped: it is optional and has no api_key")
            continue
        if keyless and spec.requires_api_key:
            problems.append(
                (
                    (*loc, "api_key"),
                    f"provider '{spec.name}' needs an api_key "
                    "(or auth: passthrough, or optional: true)",
                )
            )
            continue
        options = _provider_options(spec, backend, loc, problems)
        if options is False:
            continue
        try:
            backends[name] = Backend(name, backend, spec, spec.factory(backend, options))
        except ValidationError as exc:  # its str() would echo values, secrets included
            problems.extend(validation_problems(exc, loc))
        except (ConfigError, ValueError) as exc:
            problems.append((loc, str(exc)))
    return backends, notices


def _provider_options(
    spec: ProviderSpec, backend: BackendConfig, loc: Loc, problems: list
) -> BaseModel | bool | None:
    if spec.options_model is None:
        for key in backend.options:
            problems.append(((*loc, key), f"unknown key (provider '{spec.name}' has no options)"))
        return False if backend.options else None
    before = len(problems)
    options = _validate(spec.options_model, backend.options, loc, problems)
    return options if len(problems) == before else False


def _routes(
    config: GatewayConfig,
    source: ConfigSource,
    backends: dict[str, Backend],
    policy_specs: dict[str, PolicySpec],
    problems: list,
    notices: list[str],
) -> list[Route]:
    routes = []
    for index, route in enumerate(config.routes):
        loc: Loc = ("routes", index)
        name = route.name or f"route{index}"
        targets = _targets(route, loc, config, source, backends, problems)
        groups = _groups(route, loc, config, source, backends, problems)
        policies = _policies(route, loc, policy_specs, problems)
        if targets:
            routes.append(Route.compile(name, route, targets, policies, groups))
        elif targets is not None:
            notices.append(f"route '{name}' is skipped: all its backends are skipped")
    return routes


def _targets(
    route: RouteConfig,
    loc: Loc,
    config: GatewayConfig,
    source: ConfigSource,
    backends: dict[str, Backend],
    problems: list,
) -> list[Target] | None:
    targets: list[Target] = []
    for t_index, target in enumerate(route.targets):
        if route.backend:
            where: Loc = (*loc, "backend")
        elif route.split:
            where = (*loc, "split", "targets", t_index, "backend")
        else:
            where = (*loc, "failover", "groups", 0, t_index)
        if not _known_backend(target.backend, where, config, source, problems):
            return None
        if target.backend in backends:
            targets.append(Target(backends[target.backend], target.weight, target.model))
    return targets


def _known_backend(
    name: str, where: Loc, config: GatewayConfig, source: ConfigSource, problems: list
) -> bool:
    if name in config.backends:
        return True
    known = ", ".join(config.backends) or "none defined"
    problems.append((where, f"unknown backend {source.show(where, name)} (backends: {known})"))
    return False


def _groups(
    route: RouteConfig,
    loc: Loc,
    config: GatewayConfig,
    source: ConfigSource,
    backends: dict[str, Backend],
    problems: list,
) -> list[list[Backend]]:
    """The failover groups as live backends (skipped optional backends left out)."""
    groups: list[list[Backend]] = []
    for g_index, group in enumerate(route.failover.groups if route.failover else []):
        live = []
        for b_index, name in enumerate(group):
            where = (*loc, "failover", "groups", g_index, b_index)
            if _known_backend(name, where, config, source, problems) and name in backends:
                live.append(backends[name])
        if live:
            groups.append(live)
    return groups


def _policies(
    route: RouteConfig, loc: Loc, specs: dict[str, PolicySpec], problems: list
) -> list[Policy]:
    policies = []
    for name, section in route.policies.items():
        where = (*loc, "policies", name)
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none enabled"
            problems.append((where, f"unknown policy '{name}' (enabled policies: {known})"))
            continue
        settings = (
            _validate(spec.config_model, section, where, problems) if spec.config_model else section
        )
        if settings is not None or spec.config_model is None:
            policies.append(spec.factory(settings))
    return policies


def load_gateway(
    path: str | None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    services: Services | None = None,
) -> Gateway:
    """Read, validate and resolve a configuration file (the packaged default when None).

    `services` are the ones kept across reloads (see `Gateway.services`).
    """
    from modelway.configload import load_config

    config, source = load_config(path)
    return build_gateway(config, source, extra_plugins, services)
