"""The `azure` provider: Azure OpenAI URLs, api-version, auth headers, and its stream quirks.

Wire fixtures follow Azure OpenAI's REST reference and content-filtering docs: answers carry
`prompt_filter_results` and per-choice `content_filter_results`, and a stream opens with a
chunk that has `choices: []` and only prompt filter results. Integration tests run the
`openai` SDK through a real gateway to an upstream that checks the deployment path, the
`api-version` query and the `api-key` (or bearer) header, and answers as Azure does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openai
import pytest

from modelway.canonical import CanonicalRequest, Operation
from modelway.config import BackendConfig
from modelway.context import ClientInfo, RequestContext
from modelway.errors import ConfigError
from modelway.plugins.providers.azure import (
    AzureOptions,
    AzureProvider,
    AzureStreamDecoder,
    azure_endpoint,
    azure_url,
)
from modelway.runtime import load_gateway
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt-4o-prod"
API_KEY = "azure-key-0f3c9d1e"
ENTRA_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra-test-token"
CLIENT_KEY = "sk-client-azure"

_SAFE = {"filtered": False, "severity": "safe"}
FILTERS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTERS = [{"prompt_index": 0, "content_filter_results": FILTERS}]
PIECES = ["The", " capital", " of", " France", " is", " Paris", "."]
TOOL_CALL = {
    "id": "call_4Jd9UuXz0lRVN8Qh2Xm2cY4N",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}
USAGE = {
    "completion_tokens": 7,
    "prompt_tokens": 18,
    "total_tokens": 25,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


# --------------------------------------------------------------------------- Azure answers


def azure_completion(model: str, tools: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "refusal": None}
    if tools:
        message.update(content=None, tool_calls=[TOOL_CALL])
    else:
        message["content"] = "".join(PIECES)
    choice = {
        "content_filter_results": {} if tools else FILTERS,
        "index": 0,
        "logprobs": None,
        "finish_reason": "tool_calls" if tools else "stop",
        "message": message,
    }
    return {
        "choices": [choice],
        "created": 1729500000,
        "id": "chatcmpl-AKx9azure",
        "model": model,
        "object": "chat.completion",
        "prompt_filter_results": PROMPT_FILTERS,
        "system_fingerprint": "fp_d54531d9eb",
        "usage": USAGE,
    }


def azure_chunks(model: str, tools: bool, usage: bool) -> list[dict[str, Any]]:
    """Azure's stream: the prompt-filter chunk first, then OpenAI chunks with filter results."""
    base = {
        "created": 1729500000,
        "id": "chatcmpl-AKx9azure",
        "model": model,
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_d54531d9eb",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {
            "content_filter_results": {},
            "delta": delta,
            "finish_reason": finish,
            "index": 0,
            "logprobs": None,
        }
        return {**base, "choices": [choice], **({"usage": None} if usage else {})}

    out = [
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": PROMPT_FILTERS,
        }
    ]
    if tools:
        first = {**TOOL_CALL, "index": 0, "function": {"name": "get_weather", "arguments": ""}}
        out.append(chunk({"role": "assistant", "content": None, "tool_calls": [first]}))
        for part in ('{"ci', 'ty":"Pa', 'ris"}'):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
    else:
        out.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        out.extend(chunk({"content": piece}) for piece in PIECES)
    out.append(chunk({}, "tool_calls" if tools else "stop"))
    if usage:
        out.append({**base, "choices": [], "usage": USAGE})
    return out


def azure_error(status: int, code: str, message: str, **headers: str) -> Reply:
    body = {"error": {"code": code, "message": message}}
    return Reply(
        status=status,
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
    )


class AzureUpstream:
    """An Azure OpenAI stand-in for both URL styles; records what did not look right."""

    def __init__(self) -> None:
        self.server = UpstreamServer(self.behave)
        self.problems: list[str] = []
        self.tools = False
        self.error: Reply | None = None

    def behave(self, received: Received) -> Reply:
        url = urlsplit(received.path)
        problem = self._check(received, url.path, parse_qs(url.query))
        if problem:
            self.problems.append(problem)
            return azure_error(404, "DeploymentNotFound", problem)
        if self.error is not None:
            return self.error
        request = received.json
        if url.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}]
            body = {
                "object": "list",
                "data": data,
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
            return Reply(body=json.dumps(body).encode())
        model = "gpt-4o-2024-08-06"
        if request.get("stream"):
            usage = (request.get("stream_options") or {}).get("include_usage") is True
            events = azure_chunks(model, self.tools, usage)
            chunks = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
            return Reply(
                headers={"content-type": "text/event-stream"}, chunks=[*chunks, b"data: [DONE]\n\n"]
            )
        return Reply(body=json.dumps(azure_completion(model, self.tools)).encode())

    def _check(self, received: Received, path: str, query: dict[str, list[str]]) -> str | None:
        headers = received.headers
        if path.startswith("/openai/v1/"):
            if headers.get("authorization") != f"Bearer {ENTRA_TOKEN}" or "api-key" in headers:
                return "v1: expected the bearer token only"
            if received.json.get("model") != DEPLOYMENT or "api-version" in query:
                return "v1: expected the deployment as model and no api-version"
            return None
        if path not in (
            f"/openai/deployments/{DEPLOYMENT}/chat/completions",
            f"/openai/deployments/{DEPLOYMENT}/embeddings",
        ):
            return f"unexpected path {path}"
        if query.get("api-version") != [API_VERSION]:
            return f"unexpected query {query}"
        if headers.get("api-key") != API_KEY or "authorization" in headers:
            return "expected the api-key header only"
        return None


# --------------------------------------------------------------------------- unit: URLs and auth


def _provider(
    base_url: str | None = "https://contoso.openai.azure.com",
    api_key: str | None = API_KEY,
    auth: str = "gateway",
    **options: Any,
) -> AzureProvider:
    backend = BackendConfig(provider="azure", base_url=base_url, api_key=api_key, auth=auth)
    return AzureProvider(backend, AzureOptions(**{"api_version": API_VERSION, **options}))


def _ctx(key: str | None = None) -> RequestContext:
    return RequestContext(
        id="r1",
        method="POST",
        path="/v1/chat/completions",
        host="gw",
        headers={},
        client=ClientInfo("127.0.0.1", "anon", key),
    )


def _chat(model: str = DEPLOYMENT, stream: bool = False) -> CanonicalRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return CanonicalRequest(Operation.CHAT, model, body, stream)


@pytest.mark.parametrize(
    ("style", "operation", "version", "expected"),
    [
        (
            "deployments",
            Operation.CHAT,
            "2024-10-21",
            "https://r.openai.azure.com/openai/deployments/d%201/chat/completions"
            "?api-version=2024-10-21",
        ),
        (
            "deployments",
            Operation.EMBEDDINGS,
            "2024-10-21",
            "https://r.openai.azure.com/openai/deployments/d%201/embeddings?api-version=2024-10-21",
        ),
        ("v1", Operation.CHAT, None, "https://r.openai.azure.com/openai/v1/chat/completions"),
        (
            "v1",
            Operation.CHAT,
            "preview",
            "https://r.openai.azure.com/openai/v1/chat/completions?api-version=preview",
        ),
    ],
)
def test_urls(style, operation, version, expected):
    assert azure_url("https://r.openai.azure.com", style, "d 1", operation, version) == expected


@pytest.mark.parametrize(
    "base",
    [
        "https://r.openai.azure.com",
        "https://r.openai.azure.com/",
        "https://r.openai.azure.com/openai",
        "https://r.openai.azure.com/openai/v1/",
    ],
)
def test_endpoint_from_base_url(base):
    assert azure_endpoint(base, None) == "https://r.openai.azure.com"


def test_endpoint_from_resource_and_neither():
    assert azure_endpoint(None, "contoso") == "https://contoso.openai.azure.com"
    with pytest.raises(ConfigError, match="resource"):
        azure_endpoint(None, None)


def test_api_key_header_and_model_kept():
    wire = _provider().build_request(_ctx(), _chat("gpt-4o"))
    assert wire.url == (
        "https://contoso.openai.azure.com/openai/deployments/gpt-4o/"
        f"chat/completions?api-version={API_VERSION}"
    )
    assert wire.headers["api-key"] == API_KEY and "authorization" not in wire.headers
    assert json.loads(wire.body)["model"] == "gpt-4o"


def test_deployment_option_and_stream_usage():
    wire = _provider(deployment="prod").build_request(_ctx(), _chat("gpt-4o", stream=True))
    assert "/openai/deployments/prod/chat/completions?" in wire.url
    body = json.loads(wire.body)
    assert body["model"] == "gpt-4o" and body["stream_options"] == {"include_usage": True}
    off = _provider(stream_usage=False).build_request(_ctx(), _chat(stream=True))
    assert "stream_options" not in json.loads(off.body)


def test_bearer_and_v1_style():
    provider = _provider(
        api_key=ENTRA_TOKEN,
        auth_scheme="bearer",
        path_style="v1",
        api_version=None,
        deployment="prod",
    )
    wire = provider.build_request(_ctx(), _chat("gpt-4o"))
    assert wire.url == "https://contoso.openai.azure.com/openai/v1/chat/completions"
    assert wire.headers["authorization"] == f"Bearer {ENTRA_TOKEN}"
    assert "api-key" not in wire.headers and json.loads(wire.body)["model"] == "prod"


def test_unquoted_yaml_date_is_the_api_version(tmp_path):
    config = write_config(
        tmp_path,
        """
        plugins: [azure]
        backends:
          az: {provider: azure, resource: contoso, api_key: k, api_version: 2024-10-21}
        routes: [{match: {model: "*"}, backend: az}]
    """,
    )
    provider = load_gateway(str(config)).backends["az"].provider
    assert isinstance(provider, AzureProvider) and provider.azure.api_version == "2024-10-21"


def test_passthrough_uses_the_clients_key():
    wire = _provider(api_key=None, auth="passthrough").build_request(_ctx("client-k"), _chat())
    assert wire.headers["api-key"] == "client-k"


def test_stream_decoder_drops_prompt_filter_chunks_only():
    events = azure_chunks("m", tools=False, usage=True)
    data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    decoder = AzureStreamDecoder()
    chunks = [c for i in range(0, len(data), 11) for c in decoder.feed(data[i : i + 11])]
    chunks += decoder.close()
    assert chunks == events[1:]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == USAGE


def test_content_filter_error_keeps_azure_details():
    body = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure "
            "OpenAI's content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
        }
    }
    error = _provider().parse_error(400, {}, json.dumps(body).encode())
    assert (error.status, error.code, error.param) == (400, "content_filter", "prompt")
    assert "content management policy" in error.message


def test_rejected_key_is_502_without_the_key():
    body = b'{"error":{"code":"401","message":"Access denied due to invalid subscription key."}}'
    error = _provider().parse_error(401, {}, body)
    assert error.status == 502 and error.code == "upstream_auth_failed"
    assert API_KEY not in error.message


@pytest.mark.parametrize(
    ("backend", "fragment"),
    [
        ("{provider: azure, resource: contoso, api_key: k}", "api_version"),
        ("{provider: azure, api_version: '2024-10-21', api_key: k}", "resource"),
        ("{provider: azure, resource: contoso, api_version: 2024-10-21}", "api_key"),
        (
            "{provider: azure, resource: c, api_version: v, api_key: k, auth_scheme: basic}",
            "auth_scheme",
        ),
    ],
)
def test_config_errors(tmp_path, backend, fragment):
    config = write_config(
        tmp_path,
        f"""
        plugins: [azure]
        backends:
          az: {backend}
        routes: [{{match: {{model: "*"}}, backend: az}}]
    """,
    )
    with pytest.raises(ConfigError, match=fragment):
        load_gateway(str(config))


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def azure_env(tmp_path_factory) -> Iterator[tuple[AzureUpstream, RunningGateway]]:
    upstream = AzureUpstream()
    base = f"http://127.0.0.1:{upstream.server.port}"
    config = write_config(
        tmp_path_factory.mktemp("azure"),
        f"""
        plugins: [azure]
        backends:
          az:
            provider: azure
            base_url: "{base}"
            api_key: "{API_KEY}"
            api_version: "{API_VERSION}"
            deployment: {DEPLOYMENT}
          az-v1:
            provider: azure
            base_url: "{base}/openai/v1"
            api_key: "{ENTRA_TOKEN}"
            auth_scheme: bearer
            path_style: v1
            model: {DEPLOYMENT}
        routes:
          - {{match: {{model: "gpt-4o*"}}, backend: az}}
          - {{match: {{model: "text-embedding-*"}}, backend: az}}
          - {{match: {{model: "v1-*"}}, backend: az-v1}}
    """,
    )
    with upstream.server, run_gateway(config) as gw:
        yield upstream, gw


@pytest.fixture
def azure(azure_env) -> Iterator[tuple[AzureUpstream, openai.OpenAI]]:
    upstream, gw = azure_env
    upstream.tools, upstream.error = False, None
    upstream.problems.clear()
    yield (
        upstream,
        gw.closing(openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)),
    )
    assert upstream.problems == []


ASK = [{"role": "user", "content": "What is the capital of France?"}]


def reassemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text, calls, finish, usage = "", {}, None, None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    call["index"],
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                slot["function"]["name"] += (call.get("function") or {}).get("name") or ""
                slot["function"]["arguments"] += (call.get("function") or {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"content": text or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"message": message, "finish_reason": finish, "usage": usage}


def test_e2e_chat(azure):
    upstream, client = azure
    answer = client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert answer.choices[0].message.content == "The capital of France is Paris."
    assert answer.usage is not None and answer.usage.total_tokens == 25
    sent = upstream.server.last
    assert sent.json["model"] == "gpt-4o"  # Azure ignores it; it is passed on all the same
    assert CLIENT_KEY not in json.dumps(sent.headers)


@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
def test_e2e_stream_equals_non_streamed(azure, tools):
    upstream, client = azure
    upstream.tools = tools
    kwargs: dict[str, Any] = {"model": "gpt-4o", "messages": ASK, "tools": [WEATHER_TOOL]}
    whole = client.chat.completions.create(**kwargs).model_dump(exclude_none=True)
    chunks = [
        c.model_dump(exclude_none=True)
        for c in client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    ]
    assert all(c["id"] == "chatcmpl-AKx9azure" for c in chunks)  # no prompt-filter chunk
    message = whole["choices"][0]["message"]
    expected = {
        "message": {
            "content": message.get("content"),
            **({"tool_calls": message["tool_calls"]} if tools else {}),
        },
        "finish_reason": whole["choices"][0]["finish_reason"],
        "usage": whole["usage"],
    }
    assert reassemble(chunks) == expected
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 25
    assert upstream.server.last.json["stream_options"] == {"include_usage": True}


def test_e2e_stream_without_usage(azure):
    _, client = azure
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=ASK, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(PIECES)


def test_e2e_embeddings(azure):
    _, client = azure
    result = client.embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float"
    )
    assert result.data[0].embedding == [0.5, -0.25]


def test_e2e_v1_style_with_bearer(azure):
    upstream, client = azure
    answer = client.chat.completions.create(model="v1-gpt", messages=ASK)
    assert answer.choices[0].message.content == "The capital of France is Paris."
    assert upstream.server.last.path == "/openai/v1/chat/completions"


def test_e2e_429_kept_with_retry_after(azure):
    upstream, client = azure
    upstream.error = azure_error(
        429,
        "429",
        "Requests to the ChatCompletions_Create Operation have exceeded the call "
        "rate limit. Please retry after 6 seconds.",
        **{"retry-after": "6"},
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "6"
    assert "exceeded the call rate limit" in caught.value.message


def test_e2e_rejected_key_is_502(azure):
    upstream, client = azure
    upstream.error = azure_error(
        401, "401", "Access denied due to invalid subscription key or wrong API endpoint."
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert caught.value.status_code == 502
    assert "upstream_auth_failed" in caught.value.response.text
    assert API_KEY not in caught.value.response.text
