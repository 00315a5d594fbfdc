"""Every other OpenAI endpoint passed through: the openai SDK calls `/v1/completions`
(whole and streamed), moderations, images, audio speech (a binary answer) and transcriptions
(a multipart upload), files (upload, list, content), batches and stored chat completions
(GET, DELETE) directly on a recording upstream and through the gateway. The upstream records
the same request (method, path, query, content type, body; a multipart body modulo its random
boundary) with the gateway's key, and the client reads the same answer. A binary answer
reaches the client while the upstream is still sending it, and `max_body_bytes` holds for
uploads. Anthropic's and Gemini's other endpoints go to their own backends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Gate, Received, Reply, UpstreamServer
from tests.recording import sse_events

GATEWAY_KEY = "sk-passthrough-gateway"
ANTHROPIC_KEY = "sk-ant-passthrough-gateway"
GEMINI_KEY = "AIza-passthrough-gateway"
CLIENT_KEY = "sk-client-passthrough"
AUDIO = [bytes([n]) * 65536 for n in range(4)]
LIMIT = 256 * 1024


class Recording:
    """Answers each endpoint the way the API does, echoing what it received."""

    def __init__(self) -> None:
        self.gate: Gate | None = None

    def __call__(self, received: Received) -> Reply:
        path = received.path.split("?")[0]
        if path == "/v1/audio/speech":
            return Reply(headers={"content-type": "audio/mpeg"}, chunks=self._audio())
        if path.endswith("/content"):
            return Reply(body=b"".join(AUDIO), headers={"content-type": "application/octet-stream"})
        if received.method == "GET" and path in (
            "/v1/files",
            "/v1/batches",
            "/v1/chat/completions",
        ):
            return Reply.json({"object": "list", "data": [], "has_more": False})
        if path == "/v1/completions" and b'"stream": true' in received.body.replace(
            b'":true', b'": true'
        ):
            events = sse_events([completion_chunk("Hel"), completion_chunk("lo")], named=False)
            return Reply.sse([*events, b"data: [DONE]\n\n"])
        return Reply.json(echo(received, path))

    def _audio(self) -> Iterator[bytes]:
        for index, piece in enumerate(AUDIO):
            if index and self.gate is not None and not self.gate.wait():
                return
            yield piece


def completion_chunk(text: str) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": text, "finish_reason": None, "logprobs": None}],
    }


def echo(received: Received, path: str) -> dict[str, Any]:
    """A body the SDK reads for every endpoint: the fields its models need, plus the echo."""
    return {
        "id": "obj-1",
        "object": "echo",
        "created": 1,
        "created_at": 1,
        "model": "m",
        "deleted": True,
        "results": [],
        "data": [],
        "text": "transcribed",
        "choices": [{"index": 0, "text": "done", "finish_reason": "stop", "logprobs": None}],
        "bytes": 10,
        "filename": "f.jsonl",
        "purpose": "batch",
        "status": "processed",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-1",
        "completion_window": "24h",
        "echo": {"method": received.method, "path": received.path},
    }


@pytest.fixture(scope="module")
def behavior() -> Recording:
    return Recording()


@pytest.fixture(scope="module")
def upstream(behavior: Recording) -> Iterator[UpstreamServer]:
    with UpstreamServer(behavior) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"max_body_bytes": LIMIT},
        "backends": {
            "openai": {"provider": "openai", "base_url": upstream.url, "api_key": GATEWAY_KEY},
            "anthropic": {
                "provider": "anthropic",
                "base_url": upstream.origin,
                "api_key": ANTHROPIC_KEY,
            },
            "gemini": {"provider": "gemini", "base_url": upstream.origin, "api_key": GEMINI_KEY},
        },
        "routes": [
            {"name": "claude", "match": {"model": "claude-*"}, "backend": "anthropic"},
            {"name": "models", "match": {"model": "*"}, "backend": "openai"},
            {
                "name": "anthropic-other",
                "match": {"path": "/v1/messages/batches*"},
                "backend": "anthropic",
            },
            {"name": "gemini-other", "match": {"path": "/v1beta/*"}, "backend": "gemini"},
            {"name": "other", "match": {"path": "/v1/*"}, "backend": "openai"},
        ],
    }
    with run_gateway(config) as gw:
        yield gw


def sdk(base_url: str, key: str, owner: RunningGateway) -> openai.OpenAI:
    return owner.closing(openai.OpenAI(base_url=base_url, api_key=key, max_retries=0))


def unboundaried(received: Received) -> tuple[str, str, str, bytes]:
    """Method, path, content type and body, a multipart boundary replaced by `B`."""
    content_type = received.headers.get("content-type", "")
    body = received.body
    found = re.search(r"boundary=([^;]+)", content_type)
    if found:
        body = body.replace(found.group(1).encode(), b"B")
        content_type = content_type.replace(found.group(1), "B")
    return received.method, received.path, content_type, body


CALLS = {
    "completions": lambda c: c.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say hi",
        max_tokens=5,
        logprobs=2,
        echo=False,
        suffix="!",
    ),
    "completions-stream": lambda c: [
        x.choices[0].text
        for x in c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True)
    ],
    "moderations": lambda c: c.moderations.create(model="omni-moderation-latest", input=["a", "b"]),
    "images": lambda c: c.images.generate(
        model="gpt-image-1", prompt="a fox", size="1024x1024", n=1
    ),
    "speech": lambda c: (
        c.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input="hi").content
    ),
    "transcription": lambda c: c.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", b"RIFF" + b"\0" * 2000, "audio/wav"), language="en"
    ),
    "file-upload": lambda c: c.files.create(
        file=("b.jsonl", b'{"a": 1}\n', "application/jsonl"), purpose="batch"
    ),
    "file-list": lambda c: c.files.list(purpose="batch", limit=5),
    "file-content": lambda c: c.files.content("file-1").content,
    "batch": lambda c: c.batches.create(
        input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h"
    ),
    "stored-list": lambda c: c.chat.completions.list(limit=3),
    "stored-delete": lambda c: c.chat.completions.delete("chatcmpl-1"),
}


def answer_of(result: Any) -> Any:
    if hasattr(result, "model_dump"):
        return result.model_dump()
    if hasattr(result, "data") and hasattr(result, "has_more"):
        return [d.model_dump() for d in result.data]
    return result


@pytest.mark.parametrize("name", list(CALLS))
def test_other_endpoints_reach_the_upstream_and_answer_the_same(gateway, upstream, name):
    call = CALLS[name]
    upstream.received.clear()
    direct = answer_of(call(sdk(upstream.url, GATEWAY_KEY, gateway)))
    [sent] = upstream.received
    upstream.received.clear()
    through = answer_of(call(sdk(gateway.base_url, CLIENT_KEY, gateway)))
    [got] = upstream.received
    assert unboundaried(got) == unboundaried(sent)
    assert got.headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert through == direct
    if name == "completions-stream":
        assert through == ["Hel", "lo"]


def test_a_binary_answer_reaches_the_client_while_the_upstream_sends_it(
    gateway, upstream, behavior
):
    behavior.gate = gate = upstream.gate()
    try:
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "POST",
                f"{gateway.base_url}/audio/speech",
                json={"model": "gpt-4o-mini-tts", "voice": "alloy", "input": "hi"},
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
            ) as response,
        ):
            assert response.headers["content-type"] == "audio/mpeg"
            pieces = response.iter_raw()
            first = next(pieces)  # before the upstream may send its second piece
            assert first and set(first) == {0}
            gate.open(all=True)
            rest = b"".join(pieces)
    finally:
        behavior.gate = None
        gate.open(all=True)
    assert first + rest == b"".join(AUDIO)


def test_an_upload_over_max_body_bytes_is_a_413_in_openais_shape(gateway, upstream):
    upstream.received.clear()
    client = sdk(gateway.base_url, CLIENT_KEY, gateway)
    with pytest.raises(openai.APIStatusError) as raised:
        client.files.create(
            file=("big.jsonl", b"x" * (LIMIT + 1), "application/jsonl"), purpose="batch"
        )
    assert raised.value.status_code == 413
    assert raised.value.body["code"] == "request_too_large"
    assert upstream.received == []


def test_anthropic_and_gemini_other_endpoints_go_to_their_own_backends(gateway, upstream):
    upstream.received.clear()
    batch = {
        "requests": [
            {"custom_id": "a", "params": {"model": "claude-x", "max_tokens": 5, "messages": []}}
        ]
    }
    answer = gateway.http(
        "POST",
        "/v1/messages/batches",
        batch,
        {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
    )
    assert answer.status == 200
    cached = {
        "model": "models/gemini-2.5-pro",
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
    }
    answer = gateway.http("POST", "/v1beta/cachedContents", cached, {"x-goog-api-key": CLIENT_KEY})
    assert answer.status == 200
    anthropic_sent, gemini_sent = upstream.received
    assert (anthropic_sent.path, anthropic_sent.headers["x-api-key"]) == (
        "/v1/messages/batches",
        ANTHROPIC_KEY,
    )
    assert json.loads(anthropic_sent.body) == batch
    assert anthropic_sent.headers["anthropic-version"] == "2023-06-01"
    assert (gemini_sent.path, gemini_sent.headers["x-goog-api-key"]) == (
        "/v1beta/cachedContents",
        GEMINI_KEY,
    )
    assert json.loads(gemini_sent.body) == cached
