"""Shared fixtures: upstream servers and a gateway in front of them."""

from __future__ import annotations

import os

import pytest

from modelway.testing.upstreams import UpstreamServer

os.environ.setdefault("OPENAI_API_KEY", "")


@pytest.fixture
def upstream():
    with UpstreamServer() as server:
        yield server
