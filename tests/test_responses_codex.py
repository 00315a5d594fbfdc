"""Codex CLI (`codex exec`, a custom model provider at the gateway, `wire_api = "responses"`,
read-only sandbox) through the gateway to every backend kind. The scripted model first
calls Codex's `exec_command` tool; Codex runs it and sends its output back, and the final
answer quotes it. Codex is installed by `.ci/run` (npm, into `.cache/node`); outside CI the
tests are skipped when the binary is absent. CODEX_BIN names another binary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from tests.responses_setup import KEYS, KINDS, MODELS, Upstreams, gateway_for, upstreams

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
VENDOR = "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"


def codex_binary() -> str | None:
    for candidate in (os.environ.get("CODEX_BIN"), str(CACHE / "node" / VENDOR),
                      str(CACHE / "node/node_modules/.bin/codex"), shutil.which("codex")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


CODEX = codex_binary()
if CODEX is None:
    if os.environ.get("MODELWAY_CI"):
        raise RuntimeError("Codex CLI is missing in CI: .ci/run installs it into .cache/node")
    pytest.skip("Codex CLI is not installed (.ci/run installs it; or set CODEX_BIN)",
                allow_module_level=True)

CONFIG = """\
model = "{model}"
model_provider = "gateway"

[features]
plugins = false

[analytics]
enabled = false

[model_providers.gateway]
name = "modelway"
base_url = "{base_url}"
wire_api = "responses"
env_key = "MODELWAY_KEY"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 20000
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RunningGateway, Upstreams]]:
    with upstreams() as ups, gateway_for(tmp_path, ups.urls) as gw:
        yield gw, ups


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under /tmp: Codex will not put its helper binaries in a temporary directory.
    CACHE.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="codex-home-", dir=CACHE))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def codex_exec(
    gw: RunningGateway, home: Path, model: str, prompt: str
) -> subprocess.CompletedProcess[str]:
    codex_home = home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(CONFIG.format(model=model, base_url=gw.base_url))
    work = home / "work"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "CODEX_HOME": str(codex_home), "MODELWAY_KEY": KEYS[0], "TERM": "dumb",
           "NO_COLOR": "1"}
    assert CODEX is not None
    command = [CODEX, "exec", "--skip-git-repo-check", "-s", "read-only", "--json", prompt]
    return subprocess.run(command, env=env, cwd=work, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_codex_exec_with_a_tool_round_trip(setup, home, kind):
    gw, ups = setup
    before = len(ups.of(kind).requests)
    result = codex_exec(gw, home, MODELS[kind], "say hi")
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    items = [e["item"] for e in events if e.get("type") == "item.completed"]
    commands = [i for i in items if i.get("type") == "command_execution"]
    assert commands and "tool-ran-ok" in commands[0].get("aggregated_output", "")
    messages = [i["text"] for i in items if i.get("type") == "agent_message"]
    assert messages and messages[-1].startswith("The tool said:")
    assert "tool-ran-ok" in messages[-1]
    usage = next(e["usage"] for e in events if e.get("type") == "turn.completed")
    assert usage["input_tokens"] == 40 and usage["cached_input_tokens"] == 10
    assert len(ups.of(kind).requests) - before == 2  # the turn, then the tool's output


@pytest.mark.slow
def test_codex_with_the_default_configuration_and_no_key(home):
    """`modelway run` as installed answers Codex with the mock model, no API key anywhere."""
    with run_gateway(ROOT / "config" / "gateway.yaml") as gw:
        result = codex_exec(gw, home, "mock", "say hi")
    assert result.returncode == 0, result.stderr[-3000:]
    messages = [json.loads(line)["item"]["text"] for line in result.stdout.splitlines()
                if '"agent_message"' in line and '"item.completed"' in line]
    assert messages and messages[-1].startswith("This is a mock reply from modelway.")
