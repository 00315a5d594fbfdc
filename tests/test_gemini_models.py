"""A Google client's models list and model: the official google-genai SDK through a real
gateway with gateway keys. `client.models.list()` (`GET /v1beta/models`, and `/v1/models`
with the SDK's `v1`) lists the models the routes serve by name in Google's shape, page by
page; `client.models.get()` is one of them, or Google's 404. An OpenAI client on `/v1/models`
still gets OpenAI's list.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from modelway.plugins.ingress.gemini.models import METHODS
from modelway.testing.fake_gemini import gemini_behavior
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import UpstreamServer

CLIENT_KEY = "AIza-client-models-7"
NAMES = ["gemini-2.5-flash", "gpt-4o", "claude-haiku-4-5"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(gemini_behavior()) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "plugins": ["gemini", "gemini_api"],
        "backends": {"g": {"provider": "gemini", "base_url": upstream.url,
                           "api_key": "AIza-gateway"}},
        "routes": [
            {"match": {"model": NAMES[0]}, "backend": "g"},
            {"match": {"model": NAMES[1:]}, "backend": "g"},
            {"match": {"model": "glob-*"}, "backend": "g"},
        ],
    }
    with run_gateway(config) as gw:
        yield gw


def sdk(gw: RunningGateway, version: str | None = None, key: str = CLIENT_KEY) -> genai.Client:
    options = types.HttpOptions(
        base_url=gw.url, api_version=version, retry_options=types.HttpRetryOptions(attempts=1))
    return gw.resource(("genai", version, key),
                       lambda: genai.Client(api_key=key, http_options=options))


@pytest.mark.parametrize("version", [None, "v1beta", "v1"])
def test_models_list_is_the_routes_models_in_googles_shape(gateway, version):
    models = list(sdk(gateway, version).models.list())
    assert [m.name for m in models] == [f"models/{name}" for name in NAMES]
    assert models[0].display_name == NAMES[0]
    assert models[0].supported_actions == METHODS


def test_models_list_pages(gateway):
    pager = sdk(gateway).models.list(config={"page_size": 2})
    assert [m.name for m in pager.page] == ["models/gemini-2.5-flash", "models/gpt-4o"]
    assert [m.name for m in pager] == [f"models/{name}" for name in NAMES]
    first = gateway.http("GET", "/v1beta/models?pageSize=2",
                         headers={"x-goog-api-key": CLIENT_KEY}).json
    assert first["nextPageToken"]
    rest = gateway.http("GET", f"/v1beta/models?pageSize=2&pageToken={first['nextPageToken']}",
                        headers={"x-goog-api-key": CLIENT_KEY}).json
    assert [m["name"] for m in rest["models"]] == ["models/claude-haiku-4-5"]
    assert "nextPageToken" not in rest


@pytest.mark.parametrize("version", [None, "v1"])
def test_one_model_and_googles_404(gateway, version, upstream):
    upstream.received.clear()
    model = sdk(gateway, version).models.get(model="gpt-4o")
    assert (model.name, model.display_name) == ("models/gpt-4o", "gpt-4o")
    with pytest.raises(genai_errors.ClientError) as raised:
        sdk(gateway, version).models.get(model="gemini-nope")
    assert raised.value.code == 404 and raised.value.status == "NOT_FOUND"
    assert "models/gemini-nope" in raised.value.message
    assert upstream.received == []


def test_a_bad_page_token_is_googles_400(gateway):
    answer = gateway.http("GET", "/v1beta/models?pageToken=abc",
                          headers={"x-goog-api-key": CLIENT_KEY})
    assert answer.status == 400 and answer.json["error"]["status"] == "INVALID_ARGUMENT"


def test_a_wrong_key_is_googles_401(gateway):
    with pytest.raises(genai_errors.ClientError) as raised:
        list(sdk(gateway, key="AIza-wrong").models.list())
    assert raised.value.code == 401 and raised.value.status == "UNAUTHENTICATED"


def test_an_openai_client_still_gets_openais_list(gateway):
    client = gateway.closing(openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY))
    assert [m.id for m in client.models.list()] == NAMES
    assert client.models.retrieve("gpt-4o").object == "model"
