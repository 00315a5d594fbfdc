"""The example third-party plugin `modelway-hello`, installed as a real distribution.

It is found through its `modelway` entry point, listed by `modelway plugins`, enabled and
validated from YAML. The distribution lives in tests/plugins/modelway-hello (with its own
tests, on the test kit) and must be installed into the test environment.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from modelway.errors import ConfigError
from modelway.pluginmanager import PluginSource, available_plugins
from modelway.runtime import load_gateway
from modelway.testing.gateway import write_config

INSTALL_HINT = (
    "the example plugin distribution is not installed; run "
    "`pip install ./tests/plugins/modelway-hello` in the test environment"
)
MODELWAY = str(Path(sys.executable).parent / "modelway")


def hello_source() -> PluginSource:
    """The installed `hello` plugin; fails the calling test (never skips) when missing."""
    try:
        installed = metadata.distribution("modelway-hello").version == "0.1.0"
    except metadata.PackageNotFoundError:
        installed = False
    if not installed:
        pytest.fail(INSTALL_HINT, pytrace=False)
    source = available_plugins().get("hello")
    if source is None:
        pytest.fail(f"modelway-hello is installed but has no 'hello' entry point; {INSTALL_HINT}",
                    pytrace=False)
    return source


def hello_config(directory: Path, upstream_url: str, hello_section: str,
                 access_log: Path | None = None) -> Path:
    log = f"access_log: {{path: '{access_log}'}}" if access_log else ""
    return write_config(directory, f"""
        plugins:
          openai: null
          hello: {hello_section}
          {log}
        backends:
          up: {{provider: openai, base_url: "{upstream_url}", api_key: sk-gateway}}
        routes:
          - {{match: {{model: "gpt-*"}}, backend: up}}
    """)


# ------------------------------------------------------------------------------- discovery


def test_discovered_through_its_entry_point():
    source = hello_source()
    assert source.origin == "modelway-hello 0.1.0"
    assert source.target == "modelway_hello:HelloPlugin"
    plugin = source.load()
    assert type(plugin).__name__ == "HelloPlugin"
    assert set(plugin.Settings.model_fields) == {"header_value", "greeting"}
    # A class plugin is instantiated once per load, so gateways never share its state.
    assert source.load() is not plugin
    assert available_plugins()["mock"].origin == "built-in"


@pytest.mark.slow
def test_modelway_plugins_lists_it_with_its_distribution(tmp_path, upstream):
    hello_source()
    listed = subprocess.run([MODELWAY, "plugins"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in listed.stdout.splitlines()[1:]}
    assert rows["hello"] == ["-", "modelway-hello 0.1.0 (modelway_hello:HelloPlugin)"]
    assert rows["mock"][1] == "built-in (modelway.plugins.providers.mock)"

    config = hello_config(tmp_path, upstream.url, "{header_value: abc}")
    listed = subprocess.run([MODELWAY, "plugins", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in listed.stdout.splitlines()[1:]}
    assert rows["hello"] == ["enabled", "modelway-hello 0.1.0 (modelway_hello:HelloPlugin)"]
    assert rows["mock"][0] == "-"


# ------------------------------------------------------------------------------- settings


def test_enabled_from_yaml_with_validated_settings(tmp_path, upstream):
    hello_source()
    config = hello_config(tmp_path, upstream.url, "{header_value: abc, greeting: hey}")
    gateway = load_gateway(str(config))
    assert "hello" in gateway.plugin_names
    settings = gateway.plugin_settings("hello")
    assert (settings.header_value, settings.greeting) == ("abc", "hey")
    assert type(settings).__module__ == "modelway_hello"


@pytest.mark.parametrize(
    ("section", "where", "message"),
    [
        # A missing key has no line of its own; a present one is located (line 4: `hello:`).
        ("{}", "plugins.hello.header_value", "Field required"),
        ("null", "plugins.hello.header_value", "Field required"),
        ("{header_value: abc, colour: s3cret-value}", ":4: plugins.hello.colour", "unknown key"),
        ("{header_value: [a, b]}", ":4: plugins.hello.header_value",
         "Input should be a valid string"),
    ],
    ids=["missing", "null", "unknown-key", "wrong-type"],
)
def test_bad_settings_name_the_field(tmp_path, upstream, section, where, message):
    hello_source()
    config = hello_config(tmp_path, upstream.url, section)
    with pytest.raises(ConfigError) as raised:
        load_gateway(str(config))
    text = str(raised.value)
    location = f"{config}{where}" if where.startswith(":") else f"{config}: {where}"
    assert f"\n  {location}: {message}" in text
    assert "s3cret-value" not in text  # values are never echoed


# The plugin's behaviour on proxied requests is tested by its own test module,
# tests/plugins/modelway-hello/test_modelway_hello.py, with the test kit's fixtures only.
