"""The OpenAI ingress end to end: the openai SDK (and raw HTTP) through a real gateway.

Every test starts a real gateway (the test kit's `run_gateway`) in front of real upstream HTTP
servers on 127.0.0.1 (its `UpstreamServer`) or the in-process mock provider, and checks what
the client received against what the upstream produced and what the upstream received.
"""

from __future__ import annotations

import base64
import http.client
import json
import struct
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Behavior, Received, Reply, UpstreamServer

CLIENT_KEY = "sk-client-4f1d9a"
BACKEND_KEY = "sk-backend-77c3e2"
OTHER_BACKEND_KEY = "sk-backend-b-0a8d31"
SSE = {"content-type": "text/event-stream"}

PIECES = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]
USAGE = {"prompt_tokens": 31, "completion_tokens": 17, "total_tokens": 48}
MESSAGES = [{"role": "user", "content": "tell me about foxes"}]


# ------------------------------------------------------------------------- scripted upstream


def completion_body(request: dict[str, Any], text: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1700000000,
        "model": request["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def stream_events(
    request: dict[str, Any], pieces: list[str], usage: dict[str, int]
) -> list[dict[str, Any]]:
    """What OpenAI streams: a usage chunk only when the request asked for one."""
    usage_on = (request.get("stream_options") or {}).get("include_usage") is True
    base = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": request["model"],
    }
    extra = {"usage": None} if usage_on else {}
    events = []
    for index, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        events.append({**base, "choices": [choice], **extra})
    stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
    events.append({**base, "choices": [stop], **extra})
    if usage_on:
        events.append({**base, "choices": [], "usage": usage})
    return events


def sse_bytes(events: list[dict[str, Any]]) -> list[bytes]:
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def scripted_chat(
    pieces: list[str] = PIECES, usage: dict[str, int] = USAGE, delay: float = 0.0
) -> Behavior:
    """An OpenAI chat server that always answers `pieces` (joined when not streamed)."""

    def behave(received: Received) -> Reply:
        request = received.json
        if request.get("stream"):
            chunks = sse_bytes(stream_events(request, pieces, usage))
            return Reply(headers=dict(SSE), chunks=chunks, delay=delay)
        body = completion_body(request, "".join(pieces), usage)
        return Reply(body=json.dumps(body).encode())

    return behave


def upstream_vector(index: int, dims: int) -> list[float]:
    """Values exactly representable in float32, so base64 round trips compare equal."""
    return [(index + 1) * 0.5 + k * 0.25 for k in range(dims)]


def scripted_embeddings(dims: int = 5) -> Behavior:
    """An OpenAI embeddings server that honours `encoding_format` like the real one."""

    def behave(received: Received) -> Reply:
        request = received.json
        inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
        as_base64 = request.get("encoding_format") == "base64"
        data = []
        for index, _ in enumerate(inputs):
            vector = upstream_vector(index, dims)
            packed = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": packed if as_base64 else vector,
                }
            )
        body = {
            "object": "list",
            "data": data,
            "model": request["model"],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
        return Reply(body=json.dumps(body).encode())

    return behave


# ------------------------------------------------------------------------- gateway helpers


@contextmanager
def gateway_for(tmp_path: Path, config: dict[str, Any]) -> Iterator[RunningGateway]:
    path = write_config(tmp_path, yaml.safe_dump(config, sort_keys=False))
    with run_gateway(path) as gw:
        yield gw


def openai_backend(server: UpstreamServer, key: str | None = BACKEND_KEY, **extra: Any) -> dict:
    backend: dict[str, Any] = {"provider": "openai", "base_url": server.url}
    if key is not None:
        backend["api_key"] = key
    return {**backend, **extra}


def route(name: str, model: str | list[str], backend: str, **match: Any) -> dict[str, Any]:
    return {"name": name, "match": {"model": model, **match}, "backend": backend}


def client_for(gw: RunningGateway, key: str = CLIENT_KEY) -> openai.OpenAI:
    return gw.resource(
        ("openai", key),
        lambda: openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30),
    )


def served_by(raw: Any) -> tuple[str | None, str | None]:
    return raw.headers.get("x-modelway-route"), raw.headers.get("x-modelway-backend")


def raw_post(
    gw: RunningGateway, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST JSON with http.client; the status, lower-cased headers and the whole body."""
    connection = http.client.HTTPConnection(gw.host, gw.port, timeout=30)
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps(payload),
            headers={
                "content-type": "application/json",
                "authorization": f"Bearer {CLIENT_KEY}",
                **(headers or {}),
            },
        )
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


def sse_data(body: bytes) -> list[str]:
    """The `data` of every event in a raw SSE body, in order."""
    out = []
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [ln[5:].lstrip() for ln in block.split(b"\n") if ln.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines).decode())
    return out


def stream_chat(client: openai.OpenAI, **kwargs: Any) -> list[Any]:
    return list(client.chat.completions.create(stream=True, **kwargs))


def chunk_text(chunks: list[Any]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


# ------------------------------------------------------------------------- fixtures


@pytest.fixture
def scripted(upstream: UpstreamServer) -> UpstreamServer:
    upstream.behavior = scripted_chat()
    return upstream


@pytest.fixture
def chat_gw(tmp_path: Path, scripted: UpstreamServer) -> Iterator[RunningGateway]:
    """One upstream behind a gateway-key backend (gpt-*) and a passthrough one (pt-*)."""
    config = {
        "plugins": ["openai"],
        "backends": {
            "keyed": openai_backend(scripted),
            "pass": openai_backend(scripted, key=None, auth="passthrough"),
        },
        "routes": [route("pass", "pt-*", "pass"), route("keyed", "gpt-*", "keyed")],
    }
    with gateway_for(tmp_path, config) as gw:
        yield gw


@pytest.fixture
def two_upstreams() -> Iterator[tuple[UpstreamServer, UpstreamServer]]:
    with ExitStack() as stack:
        a = stack.enter_context(UpstreamServer(scripted_chat(["from-a"])))
        b = stack.enter_context(UpstreamServer(scripted_chat(["from-b"])))
        yield a, b


@pytest.fixture
def routing_gw(
    tmp_path: Path, two_upstreams: tuple[UpstreamServer, UpstreamServer]
) -> Iterator[RunningGateway]:
    a, b = two_upstreams
    config = {
        "plugins": ["openai"],
        "backends": {
            "a": openai_backend(a),
            "b": openai_backend(b, key=OTHER_BACKEND_KEY),
            "b_renamed": openai_backend(b, key=OTHER_BACKEND_KEY, model="real-upstream-model"),
        },
        "routes": [
            route("team-blue", "gpt-*", "b", headers={"X-Team": "blue-*"}),
            route("embed-path", "gpt-*", "b", path="/v1/embed*"),
            route("renamed", "alias", "b_renamed"),
            {
                "name": "split",
                "match": {"model": "split-alias"},
                "split": {
                    "targets": [
                        {"backend": "b", "weight": 1, "model": "split-real"},
                        {"backend": "a", "weight": 0},
                    ]
                },
            },
            route("exact", "gpt-exact", "b"),
            route("glob", ["gpt-*", "o[13]-?"], "a"),
            route("shadowed", "gpt-4o", "b"),
        ],
    }
    with gateway_for(tmp_path, config) as gw:
        yield gw


@pytest.fixture
def mock_gw(tmp_path: Path) -> Iterator[RunningGateway]:
    config = {
        "plugins": ["mock"],
        "backends": {
            "mock": {"provider": "mock", "chunk_delay_ms": 5, "embedding_dimensions": 12},
            "mock_fixed": {"provider": "mock", "reply": "fixed words here", "model": "fixed-v2"},
        },
        "routes": [
            route("fixed", "fixed", "mock_fixed"),
            route("mock", ["mock", "mock-*"], "mock"),
        ],
    }
    with gateway_for(tmp_path, config) as gw:
        yield gw


@pytest.fixture
def embeddings_gw(tmp_path: Path, upstream: UpstreamServer) -> Iterator[RunningGateway]:
    upstream.behavior = scripted_embeddings(dims=5)
    config = {
        "plugins": ["mock", "openai"],
        "backends": {
            "mock": {"provider": "mock", "embedding_dimensions": 12},
            "up": openai_backend(upstream),
        },
        "routes": [route("mock", "mock-embed", "mock"), route("up", "text-embedding-*", "up")],
    }
    with gateway_for(tmp_path, config) as gw:
        yield gw


MODELS_CONFIG = {
    "plugins": ["mock", "openai"],
    "backends": {
        "mock": {"provider": "mock"},
        "hidden": {"provider": "openai", "optional": True},
    },
    "routes": [
        route("first", ["alpha", "beta-*"], "mock"),
        route("second", "gamma", "mock"),
        route("hidden", ["gpt-hidden", "gpt-*"], "hidden"),
        route("third", ["alpha", "org/delta", "o[13]"], "mock"),
        route("catch-all", "*", "mock"),
    ],
}
EXPOSED = ["alpha", "gamma", "org/delta"]


@pytest.fixture
def models_gw(tmp_path: Path) -> Iterator[RunningGateway]:
    with gateway_for(tmp_path, MODELS_CONFIG) as gw:
        yield gw


# ------------------------------------------------------------------------- 1. non-streamed chat


def test_chat_answer_is_the_upstreams(chat_gw, scripted):
    answer = client_for(chat_gw).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.id == "chatcmpl-scripted"
    assert answer.choices[0].message.content == "".join(PIECES)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "gpt-4o"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (31, 17)
    sent = scripted.last
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.json["messages"] == MESSAGES
    assert sent.json["model"] == "gpt-4o"


def test_upstream_gets_backend_key_never_client_key(chat_gw, scripted):
    client_for(chat_gw).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, extra_headers={"x-api-key": CLIENT_KEY}
    )
    headers = scripted.last.headers
    assert headers["authorization"] == f"Bearer {BACKEND_KEY}"
    assert not [k for k, v in headers.items() if CLIENT_KEY in v]


def test_passthrough_backend_forwards_client_key(chat_gw, scripted):
    client_for(chat_gw).chat.completions.create(model="pt-model", messages=MESSAGES)
    headers = scripted.last.headers
    assert headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert not [k for k, v in headers.items() if BACKEND_KEY in v]


# ------------------------------------------------------------------------- 2. streamed chat


def test_streamed_text_equals_non_streamed_answer(chat_gw):
    client = client_for(chat_gw)
    whole = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = stream_chat(client, model="gpt-4o", messages=MESSAGES)
    assert "".join(chunk_text(chunks)) == whole.choices[0].message.content


def test_stream_preserves_chunk_order(chat_gw, scripted):
    pieces = [f"<{i:02d}>" for i in range(25)]
    scripted.behavior = scripted_chat(pieces)
    chunks = stream_chat(client_for(chat_gw), model="gpt-4o", messages=MESSAGES)
    assert chunk_text(chunks) == pieces
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks] == [None] * len(pieces) + ["stop"]
    assert {c.id for c in chunks} == {"chatcmpl-scripted"}


@pytest.mark.parametrize("client_options", [None, {"include_usage": False}])
def test_stream_asks_upstream_for_usage_but_hides_it(chat_gw, scripted, client_options):
    payload: dict[str, Any] = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    if client_options is not None:
        payload["stream_options"] = client_options
    status, headers, body = raw_post(chat_gw, "/v1/chat/completions", payload)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert scripted.last.json["stream_options"] == {"include_usage": True}
    data = sse_data(body)
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert len(events) == len(PIECES) + 1
    assert [e for e in events if e.get("choices") == []] == []
    assert [e for e in events if "usage" in e] == []
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "".join(PIECES)


def test_stream_usage_chunk_when_client_asks(chat_gw, scripted):
    chunks = stream_chat(
        client_for(chat_gw),
        model="gpt-4o",
        messages=MESSAGES,
        stream_options={"include_usage": True},
    )
    assert scripted.last.json["stream_options"] == {"include_usage": True}
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    numbers = last.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
    assert numbers == USAGE
    assert [c.usage for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert "".join(chunk_text(chunks)) == "".join(PIECES)


def test_stream_sdk_sees_no_usage_when_not_asked(chat_gw):
    chunks = stream_chat(client_for(chat_gw), model="gpt-4o", messages=MESSAGES)
    assert [c for c in chunks if c.usage is not None or not c.choices] == []


# ------------------------------------------------------------------------- 3. incremental stream


def test_stream_is_relayed_incrementally(chat_gw, scripted):
    """Lockstep: the upstream sends each piece only once the client has the one before, so a
    gateway that buffered the stream would never deliver the first piece."""
    pieces = ["t0", " t1", " t2", " t3"]
    step = scripted.gate(timeout=10)

    def lockstep(received: Received) -> Reply:
        chunks = sse_bytes(stream_events(received.json, pieces, USAGE))

        def produce() -> Iterator[bytes]:
            for index, chunk in enumerate(chunks):
                if 0 < index <= len(pieces) and not step.wait():
                    return  # the client never saw the previous piece: buffered
                yield chunk

        return Reply(headers=dict(SSE), chunks=produce())

    scripted.behavior = lockstep
    client = client_for(chat_gw)
    seen: list[str] = []
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen.append(chunk.choices[0].delta.content)
            step.open()
    assert seen == pieces
    assert scripted.errors == []


# ------------------------------------------------------------------------- 4. embeddings


def test_embeddings_mock_base64_default(embeddings_gw):
    client = client_for(embeddings_gw)
    result = client.embeddings.create(model="mock-embed", input=["one", "two", "three"])
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [12, 12, 12]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(sum(x * x for x in v) == pytest.approx(1.0, abs=1e-3) for v in vectors)
    assert len({tuple(v) for v in vectors}) == 3
    assert result.model == "mock/mock-embed"


def test_embeddings_mock_float_matches_base64(embeddings_gw):
    client = client_for(embeddings_gw)
    as_b64 = client.embeddings.create(model="mock-embed", input="same text")
    as_float = client.embeddings.create(
        model="mock-embed", input="same text", encoding_format="float"
    )
    assert len(as_float.data[0].embedding) == 12
    assert as_float.data[0].embedding == pytest.approx(as_b64.data[0].embedding, abs=1e-6)
    short = client.embeddings.create(model="mock-embed", input="x", dimensions=4)
    assert len(short.data[0].embedding) == 4


def test_embeddings_upstream_base64_default(embeddings_gw, upstream):
    client = client_for(embeddings_gw)
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert upstream.last.path == "/v1/embeddings"
    assert upstream.last.json["encoding_format"] == "base64"
    assert upstream.last.headers["authorization"] == f"Bearer {BACKEND_KEY}"
    assert [d.embedding for d in result.data] == [upstream_vector(0, 5), upstream_vector(1, 5)]


def test_embeddings_upstream_float(embeddings_gw, upstream):
    client = client_for(embeddings_gw)
    result = client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="float"
    )
    assert upstream.last.json["encoding_format"] == "float"
    assert result.data[0].embedding == upstream_vector(0, 5)
    assert result.usage.prompt_tokens == 4


# ------------------------------------------------------------------------- 5. models


def test_models_list_is_the_exact_route_names(models_gw):
    ids = [m.id for m in client_for(models_gw).models.list()]
    assert sorted(ids) == sorted(EXPOSED)
    assert len(ids) == len(set(ids))


def test_models_retrieve_listed(models_gw):
    model = client_for(models_gw).models.retrieve("gamma")
    assert (model.id, model.object) == ("gamma", "model")


def test_models_retrieve_listed_name_with_slash(models_gw):
    # The SDK percent-encodes the path segment: GET /v1/models/org%2Fdelta.
    model = client_for(models_gw).models.retrieve("org/delta")
    assert model.id == "org/delta"


def test_models_retrieve_unknown_is_404(models_gw):
    with pytest.raises(openai.NotFoundError) as caught:
        client_for(models_gw).models.retrieve("no-such-model")
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"


# ------------------------------------------------------------------------- 6. routing


def _chat_raw(gw: RunningGateway, model: str, **kwargs: Any) -> Any:
    return client_for(gw).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, **kwargs
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-exact", ("exact", "b")),
        ("gpt-4o-mini", ("glob", "a")),
        ("o3-x", ("glob", "a")),
        ("gpt-4o", ("glob", "a")),  # "shadowed" lists it exactly, but "glob" comes first
    ],
)
def test_route_by_model(routing_gw, two_upstreams, model, expected):
    a, b = two_upstreams
    raw = _chat_raw(routing_gw, model)
    assert served_by(raw) == expected
    server, other = (a, b) if expected[1] == "a" else (b, a)
    assert raw.parse().choices[0].message.content == f"from-{expected[1]}"
    assert [r.json["model"] for r in server.received] == [model]
    assert other.received == []


@pytest.mark.parametrize("model", ["my-gpt-4", "gpt", "o1-long"])
def test_route_globs_match_whole_name(routing_gw, two_upstreams, model):
    with pytest.raises(openai.NotFoundError) as caught:
        _chat_raw(routing_gw, model)
    assert caught.value.code == "model_not_found"
    assert [s.received for s in two_upstreams] == [[], []]


@pytest.mark.parametrize(
    ("team", "expected"),
    [("blue-7", ("team-blue", "b")), ("red-1", ("glob", "a")), ("xblue-7", ("glob", "a"))],
)
def test_route_by_header_glob(routing_gw, two_upstreams, team, expected):
    raw = _chat_raw(routing_gw, "gpt-4o", extra_headers={"X-Team": team})
    assert served_by(raw) == expected
    assert raw.parse().choices[0].message.content == f"from-{expected[1]}"


def test_route_by_path_glob(routing_gw, two_upstreams):
    _, b = two_upstreams
    b.behavior = scripted_embeddings(dims=3)
    raw = client_for(routing_gw).embeddings.with_raw_response.create(
        model="gpt-embed", input="x", encoding_format="float"
    )
    assert served_by(raw) == ("embed-path", "b")
    assert raw.parse().data[0].embedding == upstream_vector(0, 3)
    assert b.last.path == "/v1/embeddings"
    assert served_by(_chat_raw(routing_gw, "gpt-embed")) == ("glob", "a")


def test_backend_model_overrides_upstream_model(routing_gw, two_upstreams):
    a, b = two_upstreams
    raw = _chat_raw(routing_gw, "alias")
    assert served_by(raw) == ("renamed", "b_renamed")
    assert b.last.json["model"] == "real-upstream-model"
    assert b.last.headers["authorization"] == f"Bearer {OTHER_BACKEND_KEY}"
    assert a.received == []


def test_split_target_model_overrides_upstream_model(routing_gw, two_upstreams):
    a, b = two_upstreams
    for _ in range(3):
        raw = _chat_raw(routing_gw, "split-alias")
        assert served_by(raw) == ("split", "b")
        assert raw.headers.get("x-modelway-variant") == "b"
    assert [r.json["model"] for r in b.received] == ["split-real"] * 3
    assert a.received == []


def test_stream_carries_route_headers(routing_gw, two_upstreams):
    _, b = two_upstreams
    status, headers, body = raw_post(
        routing_gw, "/v1/chat/completions", {"model": "alias", "messages": MESSAGES, "stream": True}
    )
    assert status == 200
    assert (headers.get("x-modelway-route"), headers.get("x-modelway-backend")) == (
        "renamed",
        "b_renamed",
    )
    assert b.last.json["model"] == "real-upstream-model"
    assert json.loads(sse_data(body)[0])["choices"][0]["delta"]["content"] == "from-b"


# ------------------------------------------------------------------------- 7. mock provider


def mock_reply(prompt: str) -> str:
    return f"This is a mock reply from modelway. You said: {prompt}"


def test_mock_is_deterministic(mock_gw):
    client = client_for(mock_gw)
    messages = [{"role": "user", "content": "hello there friend"}]
    first = client.chat.completions.create(model="mock", messages=messages)
    second = client.chat.completions.create(model="mock", messages=messages)
    assert first.choices[0].message.content == mock_reply("hello there friend")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.id == first.id
    assert first.model == "mock/mock"
    assert first.model.startswith("mock/")


def test_mock_usage(mock_gw):
    answer = client_for(mock_gw).chat.completions.create(
        model="mock-large", messages=[{"role": "user", "content": "count these four words"}]
    )
    text = answer.choices[0].message.content
    assert answer.model == "mock/mock-large"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == 4 + 3
    assert answer.usage.completion_tokens == len(text.split())
    assert answer.usage.total_tokens == 7 + len(text.split())


def test_mock_streams_several_chunks(mock_gw):
    client = client_for(mock_gw)
    messages = [{"role": "user", "content": "stream me please"}]
    whole = client.chat.completions.create(model="mock", messages=messages)
    chunks = stream_chat(
        client, model="mock", messages=messages, stream_options={"include_usage": True}
    )
    pieces = chunk_text(chunks)
    assert len(pieces) >= 5
    assert "".join(pieces) == whole.choices[0].message.content
    assert {c.model for c in chunks} == {"mock/mock"}
    assert chunks[-1].usage is not None and whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_mock_fixed_reply_and_backend_model(mock_gw):
    raw = _chat_raw(mock_gw, "fixed")
    answer = raw.parse()
    assert answer.choices[0].message.content == "fixed words here"
    assert answer.model == "mock/fixed-v2"
    assert served_by(raw) == ("fixed", "mock_fixed")


# ------------------------------------------------------------------------- 8. access log


PROMPT_SECRET = "purple-elephant-prompt-91c4"
LOG_CLIENT_KEY = "sk-client-log-5e2b"
LOG_BACKEND_KEY = "sk-backend-log-d37f"


def read_log(path: Path) -> dict[str, dict[str, Any]]:
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(lines)
    by_id = {r["request_id"]: r for r in records}
    assert len(by_id) == len(records), "one line per request"
    return by_id


@pytest.fixture
def access_log_run(tmp_path: Path, scripted: UpstreamServer) -> tuple[Path, dict[str, Any]]:
    """Runs three requests (answer, stream, unknown model) and returns the log by request id."""
    log = tmp_path / "access.jsonl"
    config = {
        "plugins": {"access_log": {"path": str(log)}, "openai": None},
        "backends": {"up": openai_backend(scripted, key=LOG_BACKEND_KEY, model="up-model")},
        "routes": [route("main", "gpt-*", "up")],
    }
    messages = [{"role": "user", "content": PROMPT_SECRET}]
    with gateway_for(tmp_path, config) as gw:
        client = client_for(gw, key=LOG_CLIENT_KEY)
        client.chat.completions.create(
            model="gpt-4o", messages=messages, extra_headers={"x-request-id": "req-plain"}
        )
        stream_chat(
            client,
            model="gpt-4o",
            messages=messages,
            extra_headers={"x-request-id": "req-stream", "x-user-id": "alice"},
        )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="unknown", messages=messages, extra_headers={"x-request-id": "req-404"}
            )
    return log, read_log(log)


def test_access_log_one_line_per_request(access_log_run):
    _, records = access_log_run
    assert sorted(records) == ["req-404", "req-plain", "req-stream"]


def test_access_log_plain_request(access_log_run):
    record = access_log_run[1]["req-plain"]
    assert {
        k: record[k]
        for k in (
            "route",
            "backend",
            "provider",
            "model",
            "upstream_model",
            "status",
            "stream",
            "prompt_tokens",
            "completion_tokens",
            "ttft_ms",
            "path",
            "method",
        )
    } == {
        "route": "main",
        "backend": "up",
        "provider": "openai",
        "model": "gpt-4o",
        "upstream_model": "up-model",
        "status": 200,
        "stream": False,
        "prompt_tokens": 31,
        "completion_tokens": 17,
        "ttft_ms": None,
        "path": "/v1/chat/completions",
        "method": "POST",
    }
    assert isinstance(record["latency_ms"], int | float) and record["latency_ms"] > 0
    assert record["client"].startswith("key:")
    assert "error" not in record


def test_access_log_stream_request(access_log_run):
    record = access_log_run[1]["req-stream"]
    assert (record["route"], record["backend"], record["provider"]) == ("main", "up", "openai")
    assert (record["model"], record["upstream_model"]) == ("gpt-4o", "up-model")
    assert (record["status"], record["stream"]) == (200, True)
    # the gateway asked upstream for usage although the client did not
    assert (record["prompt_tokens"], record["completion_tokens"]) == (31, 17)
    assert isinstance(record["ttft_ms"], int | float)
    assert 0 < record["ttft_ms"] <= record["latency_ms"]
    assert record["client"] == "user:alice"


def test_access_log_error_request(access_log_run):
    record = access_log_run[1]["req-404"]
    assert (record["status"], record["route"], record["backend"]) == (404, None, None)
    assert record["error"] == "model_not_found"
    assert record["client"] == access_log_run[1]["req-plain"]["client"]


def test_access_log_has_no_prompt_and_no_keys(access_log_run):
    text = access_log_run[0].read_text()
    for secret in (PROMPT_SECRET, LOG_CLIENT_KEY, LOG_BACKEND_KEY, "purple-elephant"):
        assert secret not in text
