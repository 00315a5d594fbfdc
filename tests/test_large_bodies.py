"""A JSON request over 1 MiB (a long conversation, images inlined as base64) goes upstream
whole: aiohttp warns about raw bytes bodies that large (the test suite makes warnings errors),
and the gateway sends them without that warning, byte for byte.

A real gateway in front of a real HTTP upstream, the official openai SDK as the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Reply, UpstreamServer

ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(lambda received: Reply.json(ANSWER)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "backends": {
            "up": {"provider": "openai", "base_url": upstream.url, "api_key": "sk-up"},
        },
        "routes": [{"match": {"model": "*"}, "backend": "up"}],
    }
    with run_gateway(config) as gw:
        yield gw


@pytest.mark.parametrize("megabytes", [1.5, 6])
def test_a_json_body_over_a_mebibyte_goes_upstream_whole(gateway, upstream, megabytes):
    upstream.received.clear()
    text = "x" * int(megabytes * 2**20)
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-client") as client:
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    assert answer.choices[0].message.content == "ok"
    sent = json.loads(upstream.last.body)
    assert sent["messages"][0]["content"] == text
