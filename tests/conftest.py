"""Shared fixtures: an upstream server, and the router's chance seeded for every test.

Property tests draw the same examples on every run (hypothesis profile `ci`: derandomized,
no example database), so a run of the suite cannot fail by the luck of its draws;
`HYPOTHESIS_PROFILE=explore` draws new examples (run it to look for new failures).

The test kit's own fixtures (`modelway_gateway`, `openai_upstream`, `closed_port`, ...) come
from its pytest plugin, `modelway.testing.plugin`, which the package registers.
"""

from __future__ import annotations

import gc
import os
import random

import pytest
from hypothesis import settings

from modelway.plugins.traffic import router
from modelway.testing.upstreams import UpstreamServer

os.environ.setdefault("OPENAI_API_KEY", "")

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def upstream():
    with UpstreamServer() as server:
        yield server


@pytest.fixture(autouse=True)
def seeded_router(monkeypatch: pytest.MonkeyPatch) -> random.Random:
    """The same weighted picks on every run (requests without a cohort, failover groups)."""
    seeded = random.Random(20_240_514)
    monkeypatch.setattr(router, "rng", seeded)
    return seeded


def pytest_collection_finish(session: pytest.Session) -> None:
    """Everything imported so far (Presidio, mitmproxy, the SDKs: millions of objects) lives
    until the end; moved out of the collector's sight, every full collection is cheaper."""
    gc.collect()
    gc.freeze()
