"""Reads a YAML configuration file into `GatewayConfig`, with errors a person can act on.

Every error names the file, the line where known, the YAML path (`routes[0].split.targets[1]
.weight`) and what is wrong. Values are never echoed, so a secret never reaches a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modelway.config import GatewayConfig
from modelway.envsubst import MissingVariable, substitute
from modelway.errors import ConfigError

Loc = Sequence[str | int]


@dataclass
class ConfigSource:
    """The file a configuration came from, kept to locate errors in it."""

    name: str
    text: str
    root: yaml.Node | None
    substituted: set[tuple[str | int, ...]] = field(default_factory=set)
    """YAML paths whose value came (at least partly) from an environment variable."""

    def show(self, loc: Loc, value: object) -> str:
        """`value` quoted for an error message, unless it came from the environment."""
        if tuple(loc) in self.substituted:
            return "(a value from an environment variable)"
        return f"'{value}'"

    def line_of(self, loc: Loc) -> int | None:
        node = self.root
        for key in loc:
            node = _child(node, key)
            if node is None:
                return None
        return node.start_mark.line + 1 if node is not None else None

    def error(self, problems: Iterable[tuple[Loc, str]]) -> ConfigError:
        lines = []
        for loc, message in problems:
            line = self.line_of(loc)
            where = f"{self.name}:{line}" if line else self.name
            lines.append(f"{where}: {format_path(loc) or '(top level)'}: {message}")
        return ConfigError("invalid configuration\n  " + "\n  ".join(lines))


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return value_node
        return None
    if isinstance(node, yaml.SequenceNode):
        if isinstance(key, int):
            return node.value[key] if key < len(node.value) else None
        return _list_item(node, key)
    return None


def _list_item(node: yaml.SequenceNode, key: str) -> yaml.Node | None:
    """An item of a list of names (or of one-key mappings) found by its name."""
    for item in node.value:
        if isinstance(item, yaml.ScalarNode) and item.value == key:
            return item
        if isinstance(item, yaml.MappingNode) and any(k.value == key for k, _ in item.value):
            return _child(item, key)
    return None


def format_path(loc: Loc) -> str:
    """`('routes', 0, 'split')` as `routes[0].split`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def default_config_text() -> tuple[str, str]:
    """The packaged default configuration (the same file as config/gateway.yaml)."""
    resource = resources.files("modelway.configs").joinpath("gateway.yaml")
    return resource.read_text(encoding="utf-8"), "<packaged default config/gateway.yaml>"


def read_source(path: str | os.PathLike[str] | None) -> ConfigSource:
    if path is None:
        text, name = default_config_text()
    else:
        try:
            text, name = Path(path).read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from None
    return ConfigSource(name, text, root)


def load_config(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> tuple[GatewayConfig, ConfigSource]:
    """Parse, substitute `${VAR}`s and validate; raise ConfigError naming every problem."""
    source = read_source(path)
    data = yaml.safe_load(source.text)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise source.error([((), "the configuration must be a mapping")])
    data = _substitute_tree(data, os.environ if environ is None else environ, (), source)
    try:
        return GatewayConfig.model_validate(data), source
    except ValidationError as exc:
        raise source.error(validation_problems(exc)) from None


def validation_problems(exc: ValidationError, prefix: Loc = ()) -> list[tuple[Loc, str]]:
    """pydantic's errors as (YAML path, message) pairs, without the offending values."""
    problems: list[tuple[Loc, str]] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [*prefix, *(p for p in error["loc"] if not _is_union_tag(p))]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append((loc, message))
    return problems


def _is_union_tag(part: Any) -> bool:
    # pydantic adds the union member's type name (e.g. 'list[str]') to locations.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _substitute_tree(
    value: Any, environ: Mapping[str, str], loc: tuple, source: ConfigSource
) -> Any:
    if isinstance(value, str):
        try:
            result = substitute(value, environ)
        except MissingVariable as exc:
            raise source.error([(loc, str(exc))]) from None
        if result != value:
            source.substituted.add(loc)
        return result
    if isinstance(value, dict):
        return {k: _substitute_tree(v, environ, (*loc, k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_tree(v, environ, (*loc, i), source) for i, v in enumerate(value)]
    return value
