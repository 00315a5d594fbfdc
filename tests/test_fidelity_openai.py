"""Same-API fidelity, OpenAI: the official openai SDK sends one chat request with the API's
whole request surface (and an unknown field) directly to a recording upstream and through the
gateway to OpenAI, OpenAI-compatible and Azure backends, streamed and not. The upstream must
record the same body and feature headers, the client must read the same answer (every field,
unknown ones too) and the upstream's rate limits and request id, except what the test names:
the credentials, and the enrich policy's prepended message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import UpstreamServer
from tests.recording import (
    Scripted,
    assert_headers_passed,
    assert_same,
    body_json,
    sse_data,
    sse_events,
)

GATEWAY_KEY = "sk-openai-fidelity-gateway"
AZURE_KEY = "azure-fidelity-key"
CLIENT_KEY = "sk-client-openai-fidelity"
PREPENDED = "You answer for the fidelity team."
API_VERSION = "2025-04-01-preview"

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}},
    "required": ["colour"],
    "additionalProperties": False,
}
REQUEST: dict[str, Any] = {
    "messages": [
        {"role": "developer", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What colour is the sky?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
            "name": "alice",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "sky"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "blue"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a fact up",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    },
    "temperature": 0.3,
    "top_p": 0.9,
    "n": 1,
    "stop": ["###"],
    "max_completion_tokens": 512,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.2,
    "logit_bias": {"1234": -5},
    "logprobs": True,
    "top_logprobs": 2,
    "seed": 7,
    "user": "u-42",
    "store": True,
    "metadata": {"team": "fidelity"},
    "reasoning_effort": "low",
    "service_tier": "auto",
    "prediction": {"type": "content", "content": "Blue"},
}
EXTRA_BODY = {  # fields one SDK generation lacks, and a future one
    "verbosity": "low",
    "prompt_cache_key": "fidelity-cache",
    "safety_identifier": "s-42",
    "future_field": {"nested": [1, 2]},
}
HEADERS = {"openai-beta": "assistants=v2", "idempotency-key": "idem-fidelity-1"}

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-fidelity",
    "object": "chat.completion",
    "created": 1764680000,
    "model": "gpt-5-2025-08-07",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": '{"colour": "blue"}',
                "refusal": None,
                "annotations": [
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "url": "https://example.org/sky",
                            "title": "Sky",
                            "start_index": 0,
                            "end_index": 5,
                        },
                    }
                ],
                "future_message_field": "kept",
            },
            "logprobs": {
                "content": [{"token": "blue", "logprob": -0.1, "bytes": [98], "top_logprobs": []}],
                "refusal": None,
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 60,
        "completion_tokens": 8,
        "total_tokens": 68,
        "prompt_tokens_details": {"cached_tokens": 32, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 4, "accepted_prediction_tokens": 1},
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fidelity",
}


def chunks() -> list[dict[str, Any]]:
    head = {k: COMPLETION[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    message = COMPLETION["choices"][0]["message"]
    return [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": message["content"], "future_delta_field": 1},
                    "logprobs": COMPLETION["choices"][0]["logprobs"],
                    "finish_reason": None,
                }
            ],
        },
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**head, "choices": [], "usage": COMPLETION["usage"]},
    ]


def stream_bytes() -> list[bytes]:
    return [*sse_events(chunks(), named=False), b"data: [DONE]\n\n"]


UPSTREAM_HEADERS = {
    "x-request-id": "req_upstream_openai",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-tokens": "6ms",
    "openai-processing-ms": "12",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    behavior = Scripted(COMPLETION, [], UPSTREAM_HEADERS)
    behavior.events = stream_bytes()
    with UpstreamServer(behavior) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "backends": {
            "openai": {"provider": "openai", "base_url": upstream.url, "api_key": GATEWAY_KEY},
            "compatible": {
                "provider": "openai",
                "base_url": upstream.url,
                "api_key": GATEWAY_KEY,
                "model": "local-model",
            },
            "hub": {
                "provider": "openai",
                "base_url": upstream.url,
                "api_key": GATEWAY_KEY,
                "same_api": False,
            },
            "azure": {
                "provider": "azure",
                "base_url": upstream.origin,
                "api_key": AZURE_KEY,
                "deployment": "gpt5-deployment",
                "api_version": API_VERSION,
            },
        },
        "routes": [
            {"name": "openai", "match": {"model": "gpt-5"}, "backend": "openai"},
            {"name": "compatible", "match": {"model": "local-model"}, "backend": "compatible"},
            {"name": "azure", "match": {"model": "gpt5-deployment"}, "backend": "azure"},
            {"name": "hub", "match": {"model": "gpt-hub"}, "backend": "hub"},
            {
                "name": "enriched",
                "match": {"model": "gpt-enriched"},
                "backend": "openai",
                "policies": {"enrich": {"prepend": [{"role": "system", "content": PREPENDED}]}},
            },
        ],
    }
    with run_gateway(config) as gw:
        yield gw


def ask(sdk: openai.OpenAI, model: str, stream: bool) -> tuple[Any, list[Any], dict[str, str]]:
    """The SDK's reading (every chunk of a stream), the raw JSON or SSE data, the headers."""
    args: dict[str, Any] = {
        **REQUEST,
        "model": model,
        "extra_body": EXTRA_BODY,
        "extra_headers": HEADERS,
    }
    if stream:
        args |= {"stream": True, "stream_options": {"include_usage": True}}
        with sdk.chat.completions.with_streaming_response.create(**args) as response:
            data = b"".join(response.iter_bytes())
            headers = dict(response.headers)
        read = [c.model_dump() for c in sdk.chat.completions.create(**args)]
        return read, sse_data(data), headers
    raw = sdk.chat.completions.with_raw_response.create(**args)
    return raw.parse().model_dump(), [json.loads(raw.http_response.content)], dict(raw.headers)


def both(
    gateway: RunningGateway,
    upstream: UpstreamServer,
    direct_sdk: openai.OpenAI,
    model: str,
    stream: bool,
) -> Any:
    through_sdk = gateway.closing(
        openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0)
    )
    upstream.received.clear()
    direct = ask(direct_sdk, model, stream)
    direct_sent = upstream.received[0]
    upstream.received.clear()
    through = ask(through_sdk, model, stream)
    return (direct_sent, upstream.received[0]), (direct, through)


def direct_openai(gateway: RunningGateway, upstream: UpstreamServer) -> openai.OpenAI:
    return gateway.closing(openai.OpenAI(base_url=upstream.url, api_key=GATEWAY_KEY, max_retries=0))


STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


@STREAMS
@pytest.mark.parametrize("model", ["gpt-5", "local-model"])
def test_openai_and_compatible_backends_receive_and_answer_the_same(
    gateway, upstream, model, stream
):
    direct_sdk = direct_openai(gateway, upstream)
    (sent, got), (direct, through) = both(gateway, upstream, direct_sdk, model, stream)
    assert got.path == sent.path == "/v1/chat/completions"
    assert_same(body_json(sent), body_json(got))
    assert_headers_passed("openai", sent, got)
    assert got.headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert CLIENT_KEY not in str(got.headers)
    assert_same(direct[0], through[0])
    assert_same(direct[1], through[1])
    answer_headers = through[2]
    assert answer_headers["x-upstream-request-id"] == "req_upstream_openai"
    assert answer_headers["x-request-id"] != "req_upstream_openai"
    for name in ("x-ratelimit-remaining-requests", "x-ratelimit-reset-tokens"):
        assert answer_headers[name] == UPSTREAM_HEADERS[name]


@STREAMS
def test_azure_receives_and_answers_the_same(gateway, upstream, stream):
    direct_sdk = gateway.closing(
        openai.AzureOpenAI(
            azure_endpoint=upstream.origin,
            api_key=AZURE_KEY,
            api_version=API_VERSION,
            azure_deployment="gpt5-deployment",
            max_retries=0,
        )
    )
    (sent, got), (direct, through) = both(gateway, upstream, direct_sdk, "gpt5-deployment", stream)
    assert got.path == sent.path
    assert (
        got.path
        == f"/openai/deployments/gpt5-deployment/chat/completions?api-version={API_VERSION}"
    )
    assert_same(body_json(sent), body_json(got))
    assert_headers_passed("openai", sent, got)
    assert got.headers["api-key"] == AZURE_KEY
    assert_same(direct[0], through[0])
    assert_same(direct[1], through[1])


@STREAMS
def test_enrichment_is_the_only_change(gateway, upstream, stream):
    direct_sdk = direct_openai(gateway, upstream)
    (sent, got), (direct, through) = both(gateway, upstream, direct_sdk, "gpt-enriched", stream)
    messages = [{"role": "system", "content": PREPENDED}, *REQUEST["messages"]]
    assert_same(body_json(sent), body_json(got), {("messages",): messages})
    assert_same(direct[0], through[0])
    assert_same(direct[1], through[1])


def test_the_lane_answers_the_upstreams_bytes_and_same_api_false_translates(gateway, upstream):
    """The same-API lane gives the client the upstream's bytes as they were; a backend with
    `same_api: false` gives the hub's encoding of the same answer (equal as JSON only)."""
    through = gateway.closing(
        openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0)
    )
    answers = {}
    for model in ("gpt-5", "gpt-hub"):
        raw = through.chat.completions.with_raw_response.create(**REQUEST, model=model)
        answers[model] = raw.http_response.content
    assert answers["gpt-5"] == json.dumps(COMPLETION).encode()  # the upstream's own bytes
    assert answers["gpt-hub"] != answers["gpt-5"]
    assert json.loads(answers["gpt-hub"]) == COMPLETION
