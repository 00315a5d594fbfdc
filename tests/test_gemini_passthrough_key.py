"""`auth: passthrough` with a Gemini key sent as `?key=`, through a real gateway to a recording
Gemini upstream: the client's key goes upstream as it does from `x-goog-api-key`, in Google's
header, never in the URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, UpstreamServer
from tests.test_gemini_query_key import BODY, GATEWAY_KEY, GENERATE, behavior, client, config


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(behavior) as server:
        yield server


@pytest.fixture(scope="module")
def passthrough(tmp_path_factory, upstream) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("passthrough")
    made = config(upstream, str(directory / "access.jsonl"), {})
    made["backends"]["g"] = {"provider": "gemini", "base_url": upstream.origin,
                             "auth": "passthrough"}
    with run_gateway(made, directory=directory) as gw:
        yield gw


@pytest.fixture
def sent(upstream: UpstreamServer) -> list[Received]:
    upstream.received.clear()
    return upstream.received


def test_passthrough_sends_a_query_key_as_the_key_header(passthrough, sent):
    """As with `x-goog-api-key`: the client's own key goes upstream, in Google's header."""
    answer = client(passthrough).post(GENERATE, params={"key": GATEWAY_KEY}, json=BODY)
    assert answer.status_code == 200
    listed = client(passthrough).get("/v1beta/files", params={"key": GATEWAY_KEY})
    assert listed.status_code == 200
    assert [r.path for r in sent] == [GENERATE, "/v1beta/files"]
    assert all(r.headers["x-goog-api-key"] == GATEWAY_KEY for r in sent)
