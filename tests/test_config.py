"""Configuration loading and checking, without a network: every mistake is a ConfigError that
names the file, the line and the YAML path of the problem, and never prints a secret.

`load_config` checks the file's own shape; `load_gateway` also checks what belongs to
plugins (plugin settings, provider options, policies) and resolves names.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from modelway import ConfigError, Policy, PolicySpec, hookimpl
from modelway.configload import format_path, load_config
from modelway.pluginmanager import BUILTIN_PLUGINS
from modelway.runtime import Gateway, load_gateway

SECRET = "sk-live-TOPSECRET-7c1d9a0b"


# --------------------------------------------------------------------------- helpers


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def line_of(path: Path, marker: str) -> int:
    """The 1-based number of the only line of `path` that contains `marker`."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    assert len(found) == 1, (marker, found)
    return found[0]


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that `load_config` raises for `path`."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, {} if environ is None else environ)
    return str(caught.value)


def gateway_error(path: Path, extra_plugins: tuple = ()) -> str:
    """The message of the ConfigError that `load_gateway` raises for `path`."""
    with pytest.raises(ConfigError) as caught:
        load_gateway(str(path), extra_plugins)
    return str(caught.value)


def assert_names(message: str, path: Path, line: int, yaml_path: str, *words: str) -> None:
    """The error names the file, the line and the YAML path together, and says `words`."""
    assert f"{path}:{line}: {yaml_path}: " in message, message
    for word in words:
        assert word in message, (word, message)


class LimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rpm: int = Field(gt=0)


class LimitPolicy(Policy):
    name = "limit"

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings


class LimitPlugin:
    """A plugin that adds a policy with settings, registered as an extra plugin."""

    @hookimpl
    def modelway_policies(self) -> list[PolicySpec]:
        return [PolicySpec("limit", LimitPolicy, LimitSettings, "a test policy")]


# Appended to configs written with the same (8-space) indentation as the tests use.
MOCK_ROUTE = """
        routes:
          - {name: main, match: {model: "m-*"}, backend: m}
"""


# --------------------------------------------------------------------------- the file's own shape


def test_valid_config_loads(tmp_path):
    path = write(
        tmp_path,
        """
        gateway: {port: 9999, max_body_bytes: 1000, api_keys: [k1]}
        plugins: [mock]
        backends:
          m: {provider: mock, reply: hello}
        routes:
          - {name: main, match: {model: "m-*"}, backend: m}
    """,
    )
    config, source = load_config(path, {})
    assert config.gateway.port == 9999
    assert config.backends["m"].options == {"reply": "hello"}
    assert source.name == str(path)
    gateway = load_gateway(str(path))
    assert [r.name for r in gateway.routes] == ["main"]
    assert gateway.match_route("m-1", "/v1/chat/completions", {}) is gateway.routes[0]


def test_unknown_top_level_key(tmp_path):
    path = write(
        tmp_path,
        """
        gateway: {port: 9999}
        bogus_section: 1
    """,
    )
    message = config_error(path)
    assert_names(message, path, line_of(path, "bogus_section"), "bogus_section", "unknown key")


def test_unknown_key_in_gateway(tmp_path):
    path = write(
        tmp_path,
        """
        gateway:
          port: 9999
          max_body: 5
    """,
    )
    message = config_error(path)
    assert_names(message, path, line_of(path, "max_body"), "gateway.max_body", "unknown key")


def test_wrong_type_in_gateway(tmp_path):
    path = write(
        tmp_path,
        """
        gateway:
          port: eighty
          max_body_bytes: -1
    """,
    )
    message = config_error(path)
    assert_names(message, path, line_of(path, "port"), "gateway.port", "integer")
    assert_names(
        message, path, line_of(path, "max_body_bytes"), "gateway.max_body_bytes", "greater than 0"
    )


def test_every_problem_is_reported(tmp_path):
    path = write(
        tmp_path,
        """
        gateway:
          colour: blue
        extra_top: 1
        routes:
          - {backend: m, split: {targets: [{backend: m}]}}
    """,
    )
    message = config_error(path)
    assert message.startswith("invalid configuration")
    assert_names(message, path, line_of(path, "colour"), "gateway.colour", "unknown key")
    assert_names(message, path, line_of(path, "extra_top"), "extra_top", "unknown key")
    assert_names(message, path, line_of(path, "split"), "routes[0]", "exactly one of")


def test_unknown_key_in_route(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          m: {provider: mock}
        routes:
          - name: main
            backend: m
            fallback: m
    """,
    )
    message = config_error(path)
    assert_names(message, path, line_of(path, "fallback"), "routes[0].fallback", "unknown key")


def test_unknown_key_in_route_match(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          m: {provider: mock}
        routes:
          - name: first
            backend: m
          - name: second
            match:
              model: "x-*"
              region: eu
            backend: m
    """,
    )
    message = config_error(path)
    assert_names(message, path, line_of(path, "region"), "routes[1].match.region", "unknown key")


@pytest.mark.parametrize(
    ("weight", "words"),
    [("-1", ("greater than or equal to 0",)), ("heavy", ("valid number",))],
)
def test_bad_split_weight_names_the_target(tmp_path, weight, words):
    path = write(
        tmp_path,
        f"""
        backends:
          a: {{provider: mock}}
          b: {{provider: mock}}
        routes:
          - name: ab
            split:
              targets:
                - {{backend: a, weight: 1}}
                - {{backend: b, weight: {weight}}}
    """,
    )
    message = config_error(path)
    assert_names(
        message, path, line_of(path, "backend: b"), "routes[0].split.targets[1].weight", *words
    )
    # The value itself is not echoed (the file's own path may contain anything).
    assert weight not in message.replace(str(path), "").replace("weight", "")


def test_split_without_positive_weight(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          a: {provider: mock}
        routes:
          - name: zero
            split:
              targets: [{backend: a, weight: 0}]
    """,
    )
    message = config_error(path)
    assert_names(message, path, line_of(path, "targets:"), "routes[0].split", "weight above 0")


def test_bad_cohort(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          a: {provider: mock}
        routes:
          - split:
              cohort: user
              targets: [{backend: a}]
    """,
    )
    message = config_error(path)
    assert_names(message, path, line_of(path, "cohort"), "routes[0].split.cohort", "cohort must")


@pytest.mark.parametrize(
    "route",
    [
        pytest.param("{name: both, backend: a, split: {targets: [{backend: a}]}}", id="both"),
        pytest.param("{name: neither, match: {model: x}}", id="neither"),
    ],
)
def test_route_needs_exactly_one_of_backend_or_split(tmp_path, route):
    path = write(
        tmp_path,
        f"""
        backends:
          a: {{provider: mock}}
        routes:
          - {{name: fine, backend: a}}
          - {route}
    """,
    )
    message = config_error(path)
    assert_names(
        message, path, line_of(path, route[:12]), "routes[1]", "exactly one of 'backend' or 'split'"
    )


def test_backend_without_provider(tmp_path):
    path = write(
        tmp_path,
        """
        backends:
          nameless:
            model: gpt-4o
    """,
    )
    message = config_error(path)
    assert f"{path}" in message
    assert "backends.nameless.provider: Field required" in message


@pytest.mark.parametrize(
    "text",
    [pytest.param("- a\n- b\n", id="list"), pytest.param("just a string\n", id="string")],
)
def test_config_that_is_not_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    message = config_error(path)
    assert str(path) in message and "must be a mapping" in message


def test_empty_file_is_the_default_shape(tmp_path):
    config, _ = load_config(write(tmp_path, "# nothing here\n"), {})
    assert config.backends == {} and config.routes == [] and config.gateway.port == 8080


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(
        tmp_path,
        """
        gateway:
          port: 8080
        backends:
          m: {provider: mock
        routes: []
    """,
    )
    message = config_error(path)
    assert message.startswith(f"{path}: not valid YAML")
    assert "line " in message


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "missing.yaml"
    message = config_error(path)
    assert str(path) in message and "cannot read" in message


def test_format_path():
    assert format_path(["routes", 0, "split", "targets", 1, "weight"]) == (
        "routes[0].split.targets[1].weight"
    )
    assert format_path([]) == ""
    assert format_path(["backends", "m", "nonsense"]) == "backends.m.nonsense"


# --------------------------------------------------------------------------- plugins and names


def test_unknown_key_in_provider_options(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m:
            provider: mock
            nonsense: 1
    """
        + MOCK_ROUTE,
    )
    message = gateway_error(path)
    assert_names(message, path, line_of(path, "nonsense"), "backends.m.nonsense", "unknown key")


def test_wrong_type_in_provider_options(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m:
            provider: mock
            chunk_delay_ms: -5
    """
        + MOCK_ROUTE,
    )
    message = gateway_error(path)
    assert_names(
        message,
        path,
        line_of(path, "chunk_delay_ms"),
        "backends.m.chunk_delay_ms",
        "greater than or equal to 0",
    )


def test_unknown_key_in_openai_options(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [openai]
        backends:
          up:
            provider: openai
            api_key: sk-x
            organisation: org-1
        routes:
          - {backend: up}
    """,
    )
    message = gateway_error(path)
    assert_names(
        message, path, line_of(path, "organisation"), "backends.up.organisation", "unknown key"
    )


def test_unknown_backend_in_route(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m: {provider: mock}
        routes:
          - name: main
            backend: ghost
    """,
    )
    message = gateway_error(path)
    assert_names(
        message,
        path,
        line_of(path, "ghost"),
        "routes[0].backend",
        "unknown backend",
        "backends: m",
    )


def test_unknown_backend_in_split(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m: {provider: mock}
        routes:
          - name: main
            split:
              targets:
                - {backend: m}
                - {backend: ghost}
    """,
    )
    message = gateway_error(path)
    assert_names(
        message,
        path,
        line_of(path, "ghost"),
        "routes[0].split.targets[1].backend",
        "unknown backend",
    )


def test_unknown_provider(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m:
            provider: mystery
    """
        + MOCK_ROUTE,
    )
    message = gateway_error(path)
    assert_names(
        message,
        path,
        line_of(path, "mystery"),
        "backends.m.provider",
        "unknown provider",
        "mock",
    )


def test_provider_of_a_disabled_plugin(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          up:
            provider: openai
            api_key: sk-x
        routes:
          - {backend: up}
    """,
    )
    message = gateway_error(path)
    assert_names(
        message,
        path,
        line_of(path, "provider: openai"),
        "backends.up.provider",
        "unknown provider",
        "is its plugin enabled",
    )


@pytest.mark.parametrize(
    "plugins",
    [
        pytest.param("plugins: [mock, telepathy]", id="list"),
        pytest.param("plugins:\n  mock:\n  telepathy: {level: 3}", id="mapping"),
    ],
)
def test_unknown_plugin_lists_the_available_ones(tmp_path, plugins):
    path = write(tmp_path, plugins + "\nbackends: {}\n")
    message = gateway_error(path)
    assert "unknown plugin 'telepathy'" in message
    for name in BUILTIN_PLUGINS:
        assert name in message
    # plugins.telepathy or plugins[1], on the line that names it
    assert f"{path}:{line_of(path, 'telepathy')}: plugins" in message, message


def test_plugin_settings_fail_their_model(tmp_path):
    path = write(
        tmp_path,
        """
        plugins:
          access_log:
            enabled: notabool
    """,
    )
    message = gateway_error(path)
    assert_names(message, path, line_of(path, "enabled"), "plugins.access_log.enabled", "boolean")
    assert "notabool" not in message


def test_plugin_settings_unknown_key(tmp_path):
    path = write(
        tmp_path,
        """
        plugins:
          access_log: {enabled: true, rotate: daily}
    """,
    )
    message = gateway_error(path)
    assert_names(message, path, line_of(path, "rotate"), "plugins.access_log.rotate", "unknown key")


def test_plugin_without_settings_given_settings(tmp_path):
    path = write(
        tmp_path,
        """
        plugins:
          mock:
          openai: {retries: 3}
    """,
    )
    message = gateway_error(path)
    assert_names(
        message,
        path,
        line_of(path, "retries"),
        "plugins.openai",
        "plugin 'openai' takes no settings",
    )


def test_plugin_rejecting_its_settings_at_configure_names_the_section(tmp_path):
    """access_log cannot open its file: the error should point at plugins.access_log.path."""
    path = write(
        tmp_path,
        f"""
        plugins:
          access_log: {{path: {tmp_path}/no/such/dir/access.log}}
    """,
    )
    message = gateway_error(path)
    assert "No such file or directory" in message
    assert f"{path}:{line_of(path, 'access.log')}: plugins.access_log" in message, message


def test_unknown_policy_in_route(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m: {provider: mock}
        routes:
          - name: main
            backend: m
            policies:
              pii_scrubber: {}
    """,
    )
    message = gateway_error(path, (("limit", LimitPlugin()),))
    assert_names(
        message,
        path,
        line_of(path, "pii_scrubber"),
        "routes[0].policies.pii_scrubber",
        "unknown policy 'pii_scrubber'",
        "limit",
    )


def test_policy_settings_fail_their_model(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m: {provider: mock}
        routes:
          - name: main
            backend: m
            policies:
              limit:
                rpm: 0
    """,
    )
    message = gateway_error(path, (("limit", LimitPlugin()),))
    assert_names(
        message, path, line_of(path, "rpm"), "routes[0].policies.limit.rpm", "greater than 0"
    )


def test_policy_with_valid_settings_is_attached(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [mock]
        backends:
          m: {provider: mock}
        routes:
          - name: main
            backend: m
            policies: {limit: {rpm: 60}}
    """,
    )
    gateway = load_gateway(str(path), (("limit", LimitPlugin()),))
    (policy,) = gateway.routes[0].policies
    assert isinstance(policy, LimitPolicy) and policy.settings.rpm == 60


# --------------------------------------------------------------------------- ${VAR} substitution


def test_unset_variable_names_the_variable_file_line_and_path(tmp_path):
    path = write(
        tmp_path,
        """
        plugins: [openai]
        backends:
          up:
            provider: openai
            api_key: ${MW_TEST_UNSET_KEY}
    """,
    )
    message = config_error(path, {})
    assert_names(
        message,
        path,
        line_of(path, "api_key"),
        "backends.up.api_key",
        "MW_TEST_UNSET_KEY",
        "not set",
    )


def test_unset_variable_through_load_gateway(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_TEST_UNSET_KEY", raising=False)
    path = write(
        tmp_path,
        """
        backends:
          up: {provider: openai, api_key: "${MW_TEST_UNSET_KEY}"}
    """,
    )
    message = gateway_error(path)
    assert_names(
        message, path, line_of(path, "api_key"), "backends.up.api_key", "MW_TEST_UNSET_KEY"
    )


def test_variables_defaults_and_escapes(tmp_path):
    path = write(
        tmp_path,
        """
        gateway:
          host: ${MW_HOST}
          port: ${MW_PORT:-8123}
          identity_header: ${MW_EMPTY:-x-team}
        plugins: [openai]
        backends:
          up:
            provider: openai
            base_url: "http://${MW_HOST}:${MW_UP_PORT:-9000}/v1"
            api_key: ${MW_KEY}
            headers:
              x-price: "$$5 and $${NOT_A_VAR}"
              x-mixed: "pre-${MW_KEY}-post"
        routes:
          - backend: up
    """,
    )
    environ = {"MW_HOST": "10.0.0.7", "MW_KEY": "sk-abc", "MW_EMPTY": ""}
    config, _ = load_config(path, environ)
    assert config.gateway.host == "10.0.0.7"
    assert config.gateway.port == 8123
    assert config.gateway.identity_header == "x-team"
    backend = config.backends["up"]
    assert backend.base_url == "http://10.0.0.7:9000/v1"
    assert backend.api_key is not None and backend.api_key.get_secret_value() == "sk-abc"
    assert backend.headers == {"x-price": "$5 and ${NOT_A_VAR}", "x-mixed": "pre-sk-abc-post"}


def test_variables_are_substituted_in_lists_and_not_in_keys(tmp_path):
    path = write(
        tmp_path,
        """
        gateway:
          api_keys: ["${MW_K1}", "${MW_K2:-fallback}"]
        backends:
          "${MW_K1}": {provider: mock}
    """,
    )
    config, _ = load_config(path, {"MW_K1": "one"})
    assert [k.get_secret_value() for k in config.gateway.api_keys] == ["one", "fallback"]
    assert list(config.backends) == ["${MW_K1}"]


# --------------------------------------------------------------------------- secrets stay secret


def test_secret_api_key_is_not_printed_when_the_config_is_invalid(tmp_path):
    path = write(
        tmp_path,
        """
        gateway: {api_keys: ["${MW_SECRET}"], port: -1}
        backends:
          up: {provider: openai, api_key: "${MW_SECRET}", timeout_seconds: 0}
        routes:
          - {backend: up, split: {targets: [{backend: up}]}}
    """,
    )
    message = config_error(path, {"MW_SECRET": SECRET})
    assert "gateway.port" in message and "routes[0]" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("field", "yaml_path"),
    [
        pytest.param("gateway: {port: '${MW_SECRET}'}", "gateway.port", id="port"),
        pytest.param("gateway: {mode: '${MW_SECRET}'}", "gateway.mode", id="mode"),
        pytest.param(
            "gateway: {max_body_bytes: '${MW_SECRET}'}",
            "gateway.max_body_bytes",
            id="max_body_bytes",
        ),
        pytest.param(
            "backends: {up: {provider: openai, api_key: k, timeout_seconds: '${MW_SECRET}'}}",
            "backends.up.timeout_seconds",
            id="timeout",
        ),
        pytest.param(
            "backends: {up: {provider: openai, api_key: k, auth: '${MW_SECRET}'}}",
            "backends.up.auth",
            id="auth",
        ),
        pytest.param(
            "backends: {up: {provider: openai, api_key: k, optional: '${MW_SECRET}'}}",
            "backends.up.optional",
            id="optional",
        ),
        pytest.param(
            "backends: {up: {provider: openai, api_key: k}}\n"
            "routes: [{split: {cohort: '${MW_SECRET}', targets: [{backend: up}]}}]",
            "routes[0].split.cohort",
            id="cohort",
        ),
    ],
)
def test_secret_in_an_invalid_place_is_not_printed(tmp_path, monkeypatch, field, yaml_path):
    monkeypatch.setenv("MW_SECRET", SECRET)
    path = write(tmp_path, field + "\n")
    message = config_error(path, {"MW_SECRET": SECRET})
    assert yaml_path in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("text", "yaml_path"),
    [
        pytest.param(
            "plugins: [openai]\nbackends: {up: {provider: '${MW_SECRET}'}}\n",
            "backends.up.provider",
            id="provider",
        ),
        pytest.param(
            "plugins: [openai]\nbackends: {up: {provider: openai, api_key: k}}\n"
            "routes: [{backend: '${MW_SECRET}'}]\n",
            "routes[0].backend",
            id="route-backend",
        ),
        pytest.param(
            "plugins: [openai]\nbackends: {up: {provider: openai, api_key: k}}\n"
            "routes: [{split: {targets: [{backend: '${MW_SECRET}'}]}}]\n",
            "routes[0].split.targets[0].backend",
            id="split-backend",
        ),
        pytest.param(
            "plugins: {access_log: {enabled: '${MW_SECRET}'}}\n",
            "plugins.access_log.enabled",
            id="plugin-setting",
        ),
        pytest.param(
            "plugins: [mock]\nbackends: {m: {provider: mock, latency_ms: '${MW_SECRET}'}}\n",
            "backends.m.latency_ms",
            id="provider-option",
        ),
    ],
)
def test_secret_in_an_invalid_name_is_not_printed(tmp_path, monkeypatch, text, yaml_path):
    """Names resolved by the runtime (providers, backends) are checked after substitution."""
    monkeypatch.setenv("MW_SECRET", SECRET)
    path = write(tmp_path, text)
    message = gateway_error(path)
    assert yaml_path in message
    assert SECRET not in message


def test_secret_is_not_in_the_gateway_repr(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_SECRET", SECRET)
    path = write(
        tmp_path,
        """
        gateway: {api_keys: ["${MW_SECRET}"]}
        plugins: [openai]
        backends:
          up: {provider: openai, api_key: "${MW_SECRET}"}
        routes:
          - backend: up
    """,
    )
    gateway = load_gateway(str(path))
    assert SECRET not in repr(gateway.config)
    assert SECRET not in str(gateway.config.model_dump())


# --------------------------------------------------------------------------- optional backends


def test_optional_backend_without_key_is_skipped_with_its_route(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_OPTIONAL_KEY", raising=False)
    path = write(
        tmp_path,
        """
        plugins: [mock, openai]
        backends:
          m: {provider: mock}
          paid:
            provider: openai
            api_key: ${MW_OPTIONAL_KEY:-}
            optional: true
        routes:
          - {name: paid-route, match: {model: "gpt-*"}, backend: paid}
          - {name: mixed, match: {model: "mix"}, split: {targets: [{backend: paid}, {backend: m}]}}
          - {name: local, match: {model: "m-*"}, backend: m}
    """,
    )
    gateway = load_gateway(str(path))
    assert set(gateway.backends) == {"m"}
    assert [r.name for r in gateway.routes] == ["mixed", "local"]
    assert [t.backend.name for t in gateway.routes[0].targets] == ["m"]
    assert any("backend 'paid' is skipped" in n for n in gateway.notices), gateway.notices
    assert any("route 'paid-route' is skipped" in n for n in gateway.notices), gateway.notices
    assert gateway.match_route("gpt-4o", "/v1/chat/completions", {}) is None


def test_optional_backend_with_key_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_OPTIONAL_KEY", "sk-present")
    path = write(
        tmp_path,
        """
        plugins: [openai]
        backends:
          paid: {provider: openai, api_key: "${MW_OPTIONAL_KEY:-}", optional: true}
        routes:
          - {name: paid-route, match: {model: "gpt-*"}, backend: paid}
    """,
    )
    gateway = load_gateway(str(path))
    assert set(gateway.backends) == {"paid"}
    assert gateway.notices == []


# --------------------------------------------------------------------------- the packaged default


def _default(monkeypatch, key: str | None) -> Gateway:
    if key is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    return load_gateway(None)


def test_packaged_default_config_serves_the_mock_model(monkeypatch):
    gateway = _default(monkeypatch, None)
    assert "mock" in gateway.exposed_models()
    route = gateway.match_route("mock", "/v1/chat/completions", {})
    assert route is not None and route.name == "mock"
    assert route.targets[0].backend.provider_name == "mock"
    assert "openai" not in gateway.backends
    assert any("backend 'openai' is skipped" in n for n in gateway.notices)
    assert gateway.source.name.startswith("<packaged default")


def test_packaged_default_config_with_an_openai_key(monkeypatch):
    gateway = _default(monkeypatch, "sk-from-env")
    assert "openai" in gateway.backends
    route = gateway.match_route("gpt-4o-mini", "/v1/chat/completions", {})
    assert route is not None and route.name == "openai"
    assert "mock" in gateway.exposed_models()


def test_packaged_default_matches_the_repository_file():
    config, _ = load_config(None, {})
    repo_file = Path(__file__).parents[1] / "config" / "gateway.yaml"
    assert config == load_config(repo_file, {})[0]
