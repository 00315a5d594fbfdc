"""Anthropic's and Gemini's other endpoints: the gateway's own errors there are in the client's
API shape, not OpenAI's. The official anthropic SDK (models, files, batches) and google-genai
SDK (embeddings, files, caches) through a real gateway with gateway keys and a small
`max_body_bytes`: no route, a wrong key, a body over the limit, an unknown path, a route whose
backend is not Anthropic. An Anthropic client's `GET /v1/models` is answered in Anthropic's
shape; its other endpoints pass through with its `anthropic-beta` header. OpenAI clients on
the same paths still get OpenAI's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

CLIENT_KEY = "sk-client-other-errors"
LIMIT = 4096
FILES_BETA = "files-api-2025-04-14"


def answer(received: Received) -> Reply:
    """A files list for Anthropic's `/v1/files`, an echo otherwise."""
    if received.path.startswith("/v1/files"):
        page = {"data": [], "has_more": False, "first_id": None, "last_id": None}
        return Reply.json(page)
    return Reply.json({"echo": received.path})


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(answer) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"max_body_bytes": LIMIT, "api_keys": [CLIENT_KEY]},
        "backends": {
            "claude": {"provider": "anthropic", "base_url": upstream.origin, "api_key": "k1"},
            "gpt": {"provider": "openai", "base_url": upstream.url, "api_key": "k2"},
        },
        "routes": [
            {"name": "claude", "match": {"model": "claude-haiku-4-5"}, "backend": "claude"},
            {"name": "files", "match": {"path": "/v1/files*"}, "backend": "claude"},
        ],
    }
    with run_gateway(config) as gw:
        yield gw


def claude(gw: RunningGateway, key: str = CLIENT_KEY) -> anthropic.Anthropic:
    return gw.closing(anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0))


def gemini(gw: RunningGateway, key: str = CLIENT_KEY) -> genai.Client:
    options = types.HttpOptions(base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1))
    return gw.closing(genai.Client(api_key=key, http_options=options))


def anthropic_error(raised: pytest.ExceptionInfo[anthropic.APIStatusError]) -> dict[str, Any]:
    body = raised.value.response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    return dict(body["error"])


def google_error(raised: pytest.ExceptionInfo[genai_errors.APIError]) -> dict[str, Any]:
    body = raised.value.response.json() if hasattr(raised.value.response, "json") else None
    body = body if isinstance(body, dict) else json.loads(raised.value.response.body_segments[0])
    assert set(body) == {"error"} and {"code", "message", "status"} <= set(body["error"])
    return dict(body["error"])


# ------------------------------------------------------------------------------ Anthropic


def test_an_anthropic_clients_models_list_is_in_anthropics_shape(gateway):
    page = claude(gateway).models.list()
    assert [m.id for m in page.data] == ["claude-haiku-4-5"]
    assert page.data[0].type == "model" and page.data[0].display_name == "claude-haiku-4-5"
    assert page.has_more is False
    assert claude(gateway).models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5"
    with pytest.raises(anthropic.NotFoundError) as raised:
        claude(gateway).models.retrieve("claude-nope")
    assert anthropic_error(raised)["type"] == "not_found_error"


def test_an_openai_clients_models_list_is_still_openais(gateway):
    client = gateway.closing(openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY))
    assert [m.id for m in client.models.list()] == ["claude-haiku-4-5"]
    answer = gateway.http("GET", "/v1/models", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert answer.json["object"] == "list"


def test_anthropic_files_pass_through_with_the_beta_header(gateway, upstream):
    upstream.received.clear()
    page = claude(gateway).beta.files.list(extra_headers={"anthropic-beta": FILES_BETA})
    assert page.data == []  # (newer SDKs no longer add the files beta themselves)
    [sent] = upstream.received
    assert sent.path.startswith("/v1/files") and sent.headers["x-api-key"] == "k1"
    assert FILES_BETA in sent.headers["anthropic-beta"]


def test_a_wrong_gateway_key_is_anthropics_401(gateway, upstream):
    upstream.received.clear()
    with pytest.raises(anthropic.AuthenticationError) as raised:
        claude(gateway, "sk-wrong").beta.files.list()
    assert anthropic_error(raised)["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        claude(gateway, "sk-wrong").models.list()
    assert upstream.received == []


def test_an_endpoint_no_route_serves_is_anthropics_404(gateway, upstream):
    upstream.received.clear()
    with pytest.raises(anthropic.NotFoundError) as raised:
        claude(gateway).beta.skills.list()
    error = anthropic_error(raised)
    assert error["type"] == "not_found_error" and "/v1/skills" in error["message"]
    assert upstream.received == []


def test_an_upload_over_the_limit_is_anthropics_413(gateway, upstream):
    upstream.received.clear()
    with pytest.raises(anthropic.APIStatusError) as raised:
        claude(gateway).beta.files.upload(file=("big.txt", b"x" * (LIMIT + 1), "text/plain"))
    assert raised.value.status_code == 413
    error = anthropic_error(raised)
    assert error["type"] == "request_too_large" and str(LIMIT) in error["message"]
    assert upstream.received == []


def test_a_raw_client_on_a_batch_endpoint_gets_anthropics_401(gateway, upstream):
    """A path only Anthropic has is Anthropic's, whatever the headers say."""
    upstream.received.clear()
    answer = gateway.http(
        "POST", "/v1/messages/batches/x/cancel", b"{}", {"authorization": "Bearer sk-wrong"}
    )
    assert answer.status == 401
    assert answer.json == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "missing or invalid API key for this gateway",
        },
    }
    assert upstream.received == []


# --------------------------------------------------------------------------------- Gemini


def test_gemini_other_endpoints_without_a_route_are_googles_404(gateway, upstream):
    upstream.received.clear()
    client = gemini(gateway)
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.embed_content(model="gemini-embedding-001", contents="hi")
    error = google_error(raised)
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    with pytest.raises(genai_errors.ClientError) as raised:
        list(client.caches.list())
    assert google_error(raised)["status"] == "NOT_FOUND"
    assert upstream.received == []


def test_a_gemini_upload_is_googles_404_and_a_wrong_key_googles_401(gateway, upstream):
    upstream.received.clear()
    with pytest.raises(genai_errors.ClientError) as raised:
        gemini(gateway).files.upload(
            file=__file__, config=types.UploadFileConfig(mime_type="text/plain")
        )
    error = google_error(raised)
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    with pytest.raises(genai_errors.ClientError) as raised:
        list(gemini(gateway, "sk-wrong").files.list())
    assert google_error(raised)["status"] == "UNAUTHENTICATED"
    assert upstream.received == []


def test_a_gemini_body_over_the_limit_is_googles_error(gateway):
    answer = gateway.http(
        "POST",
        "/v1beta/models/gemini-embedding-001:embedContent",
        {"content": {"parts": [{"text": "x" * LIMIT}]}},
        {"x-goog-api-key": CLIENT_KEY},
    )
    assert answer.status == 413
    assert answer.json["error"]["code"] == 413 and "status" in answer.json["error"]


def test_an_openai_client_on_an_unknown_path_still_gets_openais_shape(gateway):
    answer = gateway.http("GET", "/nope", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert answer.status == 404
    assert set(answer.json["error"]) == {"message", "type", "param", "code"}
