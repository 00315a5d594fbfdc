"""Same-API fidelity, Anthropic: the official anthropic SDK sends one feature-rich Messages
request directly to a recording upstream and through the gateway (Anthropic and Vertex Claude
backends), streamed and not. The upstream must record the same request field by field and the
client must read the same answer, except what the test names: the credentials, Vertex's own
body shape (no `model`, `anthropic_version`), and the enrich policy's prepended system block.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Reply, UpstreamServer
from tests.recording import (
    ABSENT,
    Scripted,
    assert_headers_passed,
    assert_same,
    body_json,
    sse_data,
    sse_events,
)

GATEWAY_KEY = "sk-ant-fidelity-gateway"
VERTEX_TOKEN = "ya29.fidelity-token"
CLIENT_KEY = "sk-client-fidelity"
BETAS = "interleaved-thinking-2025-05-14,context-management-2025-06-27,files-api-2025-04-14"
PREPENDED = "You answer for the fidelity team."
SIGNATURE = "EqQBCkYIARgCKkBsig-opaque=="

CACHE = {"type": "ephemeral"}
REQUEST: dict[str, Any] = {
    "max_tokens": 2048,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": CACHE},
        {"type": "text", "text": "Cite your sources.", "cache_control": {**CACHE, "ttl": "1h"}},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "Sky: blue."},
                    "title": "facts",
                    "citations": {"enabled": True},
                    "cache_control": CACHE,
                },
                {
                    "type": "document",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": "JVBERi0x",
                    },
                },
                {"type": "text", "text": "What colour is the sky?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Look it up.", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": "RVZJTA=="},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "sky"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "blue"}],
                    "is_error": False,
                    "cache_control": CACHE,
                }
            ],
        },
    ],
    "tools": [
        {
            "name": "lookup",
            "description": "Look a fact up",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            "cache_control": CACHE,
        },
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "stop_sequences": ["###"],
    "metadata": {"user_id": "u-42"},
    "service_tier": "auto",
}
EXTRA_BODY = {  # fields the SDK of the other generation lacks, and a future one
    "top_k": 5,
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "future_field": {"nested": [1, 2, 3]},
}

MESSAGE: dict[str, Any] = {
    "id": "msg_fidelity",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "The tool said blue.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "RVZJTA=="},
        {
            "type": "server_tool_use",
            "id": "srvtoolu_1",
            "name": "web_search",
            "input": {"query": "sky colour"},
        },
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [
                {
                    "type": "web_search_result",
                    "url": "https://example.org/sky",
                    "title": "Sky",
                    "encrypted_content": "enc==",
                    "page_age": None,
                }
            ],
        },
        {
            "type": "text",
            "text": "Blue.",
            "citations": [
                {
                    "type": "char_location",
                    "cited_text": "Sky: blue.",
                    "document_index": 0,
                    "document_title": "facts",
                    "start_char_index": 0,
                    "end_char_index": 10,
                }
            ],
        },
    ],
    "stop_reason": "stop_sequence",
    "stop_sequence": "###",
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 1200,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
        "output_tokens": 40,
        "server_tool_use": {"web_search_requests": 1},
        "service_tier": "standard",
    },
    "future_answer_field": "kept",
}


def start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def stream_events() -> list[dict[str, Any]]:
    """MESSAGE as the API streams it: thinking and signature deltas, a citation delta, a
    server tool's input as JSON deltas, pings."""
    opening = {**MESSAGE, "content": [], "stop_reason": None, "stop_sequence": None}
    opening["usage"] = {**MESSAGE["usage"], "output_tokens": 1}
    blocks = MESSAGE["content"]
    citation = blocks[4]["citations"][0]
    return [
        {"type": "message_start", "message": opening},
        start(0, {**blocks[0], "thinking": "", "signature": ""}),
        {"type": "ping"},
        delta(0, type="thinking_delta", thinking="The tool said blue."),
        delta(0, type="signature_delta", signature=SIGNATURE),
        stop(0),
        start(1, blocks[1]),
        stop(1),
        start(2, {**blocks[2], "input": {}}),
        delta(2, type="input_json_delta", partial_json='{"query": "sky colour"}'),
        stop(2),
        start(3, blocks[3]),
        stop(3),
        start(4, {"type": "text", "text": "", "citations": []}),
        delta(4, type="citations_delta", citation=citation),
        delta(4, type="text_delta", text="Blue."),
        stop(4),
        {
            "type": "message_delta",
            "delta": {"stop_reason": "stop_sequence", "stop_sequence": "###"},
            "usage": {"output_tokens": 40, "cache_creation_input_tokens": 300},
        },
        {"type": "message_stop"},
    ]


UPSTREAM_HEADERS = {
    "request-id": "req_upstream_fidelity",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-tokens-reset": "2026-12-02T15:00:00Z",
    "retry-after": "3",
    "x-should-retry": "false",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    behavior = Scripted(MESSAGE, sse_events(stream_events()), UPSTREAM_HEADERS)
    with UpstreamServer(behavior) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "backends": {
            "claude": {
                "provider": "anthropic",
                "base_url": upstream.origin,
                "api_key": GATEWAY_KEY,
            },
            "vertex": {
                "provider": "vertex",
                "base_url": upstream.origin,
                "project": "proj",
                "location": "us-east5",
                "access_token": VERTEX_TOKEN,
                "model": "claude-sonnet-4-5@20250929",
            },
        },
        "routes": [
            {"name": "plain", "match": {"model": "claude-sonnet-4-5"}, "backend": "claude"},
            {"name": "vertex", "match": {"model": "claude-on-vertex"}, "backend": "vertex"},
            {
                "name": "enriched",
                "match": {"model": "claude-enriched"},
                "backend": "claude",
                "policies": {"enrich": {"prepend": [{"role": "system", "content": PREPENDED}]}},
            },
        ],
    }
    with run_gateway(config) as gw:
        yield gw


def client(base_url: str, key: str, owner: RunningGateway) -> anthropic.Anthropic:
    return owner.closing(anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0))


def create(
    sdk: anthropic.Anthropic, model: str, stream: bool
) -> tuple[Any, list[Any], dict[str, str]]:
    """One request: the SDK's parsed answer (or events), the raw JSON (or SSE data) and the
    answer headers."""
    args = {
        **REQUEST,
        "model": model,
        "extra_body": EXTRA_BODY,
        "extra_headers": {"anthropic-beta": BETAS},
        "extra_query": {"beta": "true"},
    }
    if not stream:
        raw = sdk.messages.with_raw_response.create(**args)
        return raw.parse().model_dump(), [raw.http_response.json()], dict(raw.headers)
    with sdk.messages.with_streaming_response.create(**args, stream=True) as response:
        data = b"".join(response.iter_bytes())
        headers = dict(response.headers)
    events = [event.model_dump() for event in sdk.messages.create(**args, stream=True)]
    return events, sse_data(data), headers


def both(gateway: RunningGateway, upstream: UpstreamServer, model: str, stream: bool) -> Any:
    """The same request directly and through the gateway: (direct, through) pairs of the
    recorded upstream request, the SDK's reading, the raw answer and the answer headers."""
    upstream.received.clear()
    direct = create(client(upstream.origin, GATEWAY_KEY, gateway), model, stream)
    direct_sent = upstream.received[0]
    upstream.received.clear()
    through = create(client(gateway.url, CLIENT_KEY, gateway), model, stream)
    through_sent = upstream.received[0]
    return (direct_sent, through_sent), (direct, through)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_anthropic_backend_receives_and_answers_the_same(gateway, upstream, stream):
    (sent, got), (direct, through) = both(gateway, upstream, "claude-sonnet-4-5", stream)
    assert got.path == sent.path == "/v1/messages?beta=true"
    assert_same(body_json(sent), body_json(got))
    assert_headers_passed("anthropic", sent, got)
    assert got.headers["x-api-key"] == GATEWAY_KEY and CLIENT_KEY not in str(got.headers)
    assert_same(direct[0], through[0])  # the SDK's reading
    assert_same(direct[1], through[1])  # the raw JSON or every SSE event
    for name, value in UPSTREAM_HEADERS.items():  # rate limits, retry hints, request id
        assert through[2][name] == value
    assert through[2]["x-request-id"] != UPSTREAM_HEADERS["request-id"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_vertex_claude_receives_the_same_body_in_its_own_shape(gateway, upstream, stream):
    (sent, got), (direct, through) = both(gateway, upstream, "claude-on-vertex", stream)
    method = "streamRawPredict" if stream else "rawPredict"
    model = "claude-sonnet-4-5@20250929"
    assert (
        got.path
        == f"/v1/projects/proj/locations/us-east5/publishers/anthropic/models/{model}:{method}"
    )
    changes = {("model",): ABSENT, ("anthropic_version",): "vertex-2023-10-16"}
    assert_same(body_json(sent), body_json(got), changes)
    assert got.headers["anthropic-beta"] == BETAS
    assert got.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert_same(direct[0], through[0])
    assert_same(direct[1], through[1])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_enrichment_is_the_only_change(gateway, upstream, stream):
    (sent, got), (direct, through) = both(gateway, upstream, "claude-enriched", stream)
    system = [{"type": "text", "text": PREPENDED}, *REQUEST["system"]]
    assert_same(body_json(sent), body_json(got), {("system",): system})  # the policy's edit
    assert_headers_passed("anthropic", sent, got)
    assert_same(direct[0], through[0])
    assert_same(direct[1], through[1])


RATE_LIMITED = {
    "type": "error",
    "error": {
        "type": "rate_limit_error",
        "message": "Number of requests has exceeded your rate limit",
    },
    "request_id": "req_limited",
}


def test_an_upstream_error_reaches_the_client_as_the_api_sent_it(gateway, upstream):
    headers = {**UPSTREAM_HEADERS, "x-should-retry": "true"}
    original = upstream.behavior
    upstream.behavior = lambda received: Reply(
        status=429, body=json.dumps(RATE_LIMITED).encode(), headers=headers
    )
    try:
        answers = []
        for sdk in (
            client(upstream.origin, GATEWAY_KEY, gateway),
            client(gateway.url, CLIENT_KEY, gateway),
        ):
            with pytest.raises(anthropic.RateLimitError) as raised:
                sdk.messages.create(**REQUEST, model="claude-sonnet-4-5", extra_body=EXTRA_BODY)
            answers.append(raised.value)
    finally:
        upstream.behavior = original
    direct, through = answers
    assert_same(direct.body, through.body)
    for name in (
        "retry-after",
        "x-should-retry",
        "anthropic-ratelimit-requests-remaining",
        "request-id",
    ):
        assert through.response.headers[name] == headers[name]
