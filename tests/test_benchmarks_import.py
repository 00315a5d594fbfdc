"""Every benchmark script imports (they share helpers with load.py and benchkit.py, and a
renamed helper must not break one silently; the benchmarks themselves are run by hand)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.stem for p in BENCHMARKS.glob("*.py")))
def test_benchmark_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module(script)
    assert module.__doc__, f"benchmarks/{script}.py says what it measures"
    sys.modules.pop(script, None)
