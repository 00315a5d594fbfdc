"""An OpenAI endpoint the gateway passes through, routed to a backend that cannot take it
(the mock provider): a 400 `unsupported_endpoint` in OpenAI's shape that names the path as the
client sent it, with the official openai SDK through a real gateway."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from modelway.testing.gateway import RunningGateway, run_gateway


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    config = {
        "backends": {"m": {"provider": "mock"}},
        "routes": [{"match": {"model": "mock"}, "backend": "m"}],
    }
    with run_gateway(config) as gw:
        yield gw


def test_a_pass_through_endpoint_on_a_backend_that_cannot_take_it_names_its_path(gateway):
    """It once read `/v1/v1/completions`."""
    client = gateway.closing(openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0))
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model="mock", prompt="hi")
    error = raised.value.response.json()["error"]
    assert error["code"] == "unsupported_endpoint"
    assert error["message"] == (
        "POST /v1/completions is passed through to OpenAI-compatible backends only, and this "
        "route's backend is not one"
    )
