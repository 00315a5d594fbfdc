"""Backends, route targets and routes as the running gateway uses them: compiled matching of a
request's model (exact names and globs), path, host and headers."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelway.config import BackendConfig, RouteConfig
from modelway.extension import Policy, Provider, ProviderSpec


@dataclass(eq=False)
class Backend:
    name: str
    config: BackendConfig
    spec: ProviderSpec
    provider: Provider

    @property
    def provider_name(self) -> str:
        return self.spec.name


@dataclass(eq=False)
class Target:
    backend: Backend
    weight: float
    model: str | None


@dataclass(eq=False)
class Route:
    name: str
    config: RouteConfig
    targets: list[Target]
    policies: list[Policy]
    groups: list[list[Backend]] = field(default_factory=list)
    """Failover priority groups, tried in order after the primary target."""
    _models: frozenset[str] = frozenset()
    _model_globs: re.Pattern[str] | None = None
    _path: re.Pattern[str] | None = None
    _host: re.Pattern[str] | None = None
    _headers: tuple[tuple[str, re.Pattern[str]], ...] = ()

    @classmethod
    def compile(
        cls,
        name: str,
        config: RouteConfig,
        targets: list[Target],
        policies: list[Policy],
        groups: list[list[Backend]] | None = None,
    ) -> Route:
        exact = frozenset(m for m in config.match.models if not is_glob(m))
        globs = [fnmatch.translate(m) for m in config.match.models if is_glob(m)]
        match = config.match
        return cls(
            name,
            config,
            targets,
            policies,
            groups or [],
            _models=exact,
            _model_globs=re.compile("|".join(globs)) if globs else None,
            _path=_glob(match.path),
            _host=_glob(match.host),
            _headers=tuple((k.lower(), _compile(v)) for k, v in match.headers.items()),
        )

    def matches(self, model: str, path: str, headers: Mapping[str, str], host: str = "") -> bool:
        if model not in self._models and not (self._model_globs and self._model_globs.match(model)):
            return False
        if self._path is not None and not self._path.match(path):
            return False
        if self._host is not None and not self._host.match(host):
            return False
        return all(pattern.match(headers.get(key, "")) for key, pattern in self._headers)

    def matches_host(self, host: str) -> bool:
        return self._host is None or bool(self._host.match(host))

    @property
    def exact_models(self) -> frozenset[str]:
        return self._models


def _compile(glob: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob))


def _glob(glob: str | None) -> re.Pattern[str] | None:
    return None if glob is None else _compile(glob)


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
