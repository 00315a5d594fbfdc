"""Every configuration shipped in config/ is valid, so the examples stay true."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelway.configload import load_config
from modelway.runtime import build_gateway

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "config").glob("*.yaml"))
ENVIRONMENT = {
    "MODELWAY_KEY": "mw-test",
    "OPENAI_API_KEY": "sk-test",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GEMINI_API_KEY": "AIza-test",
}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_is_valid(path):
    config, source = load_config(path, ENVIRONMENT)
    gateway = build_gateway(config, source)
    assert gateway.routes, "a shipped configuration should route something"
    assert "mock" in gateway.exposed_models()


def test_the_example_wires_failover_and_policies():
    config, source = load_config(
        Path(__file__).resolve().parent.parent / "config" / "examples.yaml", ENVIRONMENT
    )
    chat = build_gateway(config, source).routes[0]
    assert [t.backend.name for t in chat.targets] == ["gpt", "claude"]
    assert [[b.name for b in g] for g in chat.groups] == [["gemini"], ["local"]]
    assert [type(p).__name__ for p in chat.policies] == ["EnrichPolicy", "PiiGuardPolicy"]


def test_an_unquoted_429_is_a_trigger(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "plugins: [mock]\n"
        "backends: {a: {provider: mock}, b: {provider: mock}}\n"
        "routes: [{match: {model: x}, backend: a,\n"
        "          failover: {groups: [[b]], retry_on: [5xx, 429]}}]\n"
    )
    config, source = load_config(path, {})
    assert build_gateway(config, source).routes[0].config.failover.retry_on == ["5xx", "429"]


def test_the_readme_platform_example_is_the_shipped_one_and_check_accepts_it():
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    block = readme.split("<!-- platform-config -->")[1].split("<!-- /platform-config -->")[0]
    shipped = (root / "config" / "platform.yaml").read_text()
    assert block.strip().removeprefix("```yaml").removesuffix("```").strip() == shipped.strip()
    done = subprocess.run([sys.executable, "-m", "modelway.cli", "check", "-c",
                           str(root / "config" / "platform.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "state: redis" in done.stdout and "keys, limits, budgets" in done.stdout
