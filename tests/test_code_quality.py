"""The code base stays ruff-clean and type-checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_is_clean():
    result = run_tool("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = run_tool("mypy", "core", "plugins", "addons")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_says_what_it_is_for():
    missing = []
    for folder in ("core", "plugins", "addons"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if path.name != "py.typed" and text.strip() and not text.lstrip().startswith(
                ('"""', "# mypy:")
            ):
                missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"modules without a docstring: {missing}"


def test_every_hook_is_documented():
    from modelway import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("modelway_")]
    assert hooks
    undocumented = [name for name in hooks if not (getattr(hookspecs, name).__doc__ or "").strip()]
    assert not undocumented
