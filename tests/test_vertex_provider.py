"""The `vertex` provider: URLs, auth and error handling in unit tests, and round trips with
the official `openai` SDK through a real gateway to upstreams that speak Vertex AI's wire
formats: Gemini (`publishers/google`, generateContent) and Claude (`publishers/anthropic`,
rawPredict / streamRawPredict with Anthropic Messages bodies).

Service-account auth is real: the test makes an RSA key, writes a service-account JSON whose
`token_uri` points at a local token server, and that server checks the signed JWT google-auth
sends before it issues a token.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import openai
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from modelway.canonical import CanonicalRequest, Operation
from modelway.config import BackendConfig
from modelway.context import ClientInfo, RequestContext
from modelway.errors import ConfigError, GatewayError
from modelway.plugins.providers.vertex import (
    ANTHROPIC_VERSION,
    SCOPES,
    VertexOptions,
    VertexProvider,
    default_base_url,
)
from modelway.runtime import Gateway, load_gateway
from modelway.testing.clock import ManualSleep
from modelway.testing.fake_gemini import gemini_behavior, google_error
from modelway.testing.gateway import run_gateway, write_config
from modelway.testing.upstreams import Behavior, Received, Reply, UpstreamServer
from tests.openai_answers import flatten, reassemble

PROJECT = "proj-1"
LOCATION = "europe-west4"
STATIC_TOKEN = "ya29.static-token-e4f1"
CLIENT_KEY = "sk-client-1c2d"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth signs for this
PREFIX = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers"
HELLO = [{"role": "user", "content": "hello vertex"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


# ------------------------------------------------------------------------- unit


def provider(**backend: Any) -> VertexProvider:
    config = BackendConfig(provider="vertex", **backend)
    return VertexProvider(config, VertexOptions.model_validate(config.options))


def context(api_key: str | None = None) -> RequestContext:
    return RequestContext(
        id="req-3",
        method="POST",
        path="/v1/chat/completions",
        host="gw",
        headers={},
        client=ClientInfo("127.0.0.1", "anon", api_key),
    )


def chat(model: str, stream: bool = False) -> CanonicalRequest:
    body = {"model": model, "messages": HELLO, "max_tokens": 50}
    return CanonicalRequest(Operation.CHAT, model, body, stream)


def test_gemini_url_body_and_bearer():
    vertex = provider(project=PROJECT, location=LOCATION, access_token=STATIC_TOKEN)
    wire = vertex.build_request(context(), chat("gemini-2.5-pro"))
    assert wire.url == (
        f"https://{LOCATION}-aiplatform.googleapis.com{PREFIX}/google/models/gemini-2.5-pro"
        ":generateContent"
    )
    assert wire.headers["authorization"] == f"Bearer {STATIC_TOKEN}"
    assert json.loads(wire.body) == {
        "contents": [{"role": "user", "parts": [{"text": "hello vertex"}]}],
        "generationConfig": {"maxOutputTokens": 50},
    }
    streamed = vertex.build_request(context(), chat("gemini-2.5-pro", stream=True))
    assert streamed.url.endswith("/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse")


def test_claude_url_and_raw_predict_body():
    vertex = provider(project=PROJECT, location=LOCATION, access_token=STATIC_TOKEN)
    wire = vertex.build_request(context(), chat("claude-sonnet-4@20250514"))
    assert wire.url == (
        f"https://{LOCATION}-aiplatform.googleapis.com{PREFIX}/anthropic/models/"
        "claude-sonnet-4@20250514:rawPredict"
    )
    body = json.loads(wire.body)
    assert body["anthropic_version"] == ANTHROPIC_VERSION
    assert "model" not in body
    assert body["messages"] == [{"role": "user", "content": "hello vertex"}]
    assert body["max_tokens"] == 50
    streamed = vertex.build_request(context(), chat("claude-sonnet-4@20250514", stream=True))
    assert streamed.url.endswith(":streamRawPredict")
    assert json.loads(streamed.body)["stream"] is True


def test_publisher_option_overrides_the_model_name():
    vertex = provider(project=PROJECT, publisher="anthropic", access_token=STATIC_TOKEN)
    assert "/publishers/anthropic/models/my-tuned:rawPredict" in (
        vertex.build_request(context(), chat("my-tuned")).url
    )
    google = provider(project=PROJECT, publisher="google", access_token=STATIC_TOKEN)
    assert "/publishers/google/models/claude-x:generateContent" in (
        google.build_request(context(), chat("claude-x")).url
    )


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("us-central1", "https://us-central1-aiplatform.googleapis.com"),
        ("global", "https://aiplatform.googleapis.com"),
        ("eu", "https://aiplatform.eu.rep.googleapis.com"),
    ],
)
def test_default_hosts(location, host):
    assert default_base_url(location) == host


def test_credentials_and_auth_sources():
    with pytest.raises(ValidationError):
        VertexOptions(project=PROJECT, access_token="a", service_account_file="/x.json")
    with pytest.raises(ValidationError):
        VertexOptions.model_validate({"location": "us-central1"})
    keyed = provider(project=PROJECT, api_key="ya29.from-api-key")
    assert keyed.tokens is None
    wire = keyed.build_request(context(), chat("gemini-2.5-pro"))
    assert wire.headers["authorization"] == "Bearer ya29.from-api-key"
    passthrough = provider(project=PROJECT, auth="passthrough")
    wire = passthrough.build_request(context(CLIENT_KEY), chat("gemini-2.5-pro"))
    assert wire.headers["authorization"] == f"Bearer {CLIENT_KEY}"


def test_no_token_yet_is_a_503(tmp_path, rsa_key):
    key_file = service_account_file(tmp_path, rsa_key, "http://127.0.0.1:9/token")
    vertex = provider(project=PROJECT, service_account_file=str(key_file))
    assert vertex.tokens is not None
    vertex.tokens.ensure_running = lambda: None  # type: ignore[method-assign]
    with pytest.raises(GatewayError) as caught:
        vertex.build_request(context(), chat("gemini-2.5-pro"))
    assert (caught.value.status, caught.value.code) == (503, "upstream_credentials_unavailable")


@pytest.mark.parametrize("content", [None, "not json", '{"type": "service_account"}'])
def test_unusable_key_file_is_a_config_error(tmp_path, content):
    key_file = tmp_path / "key.json"
    if content is not None:
        key_file.write_text(content)
    config = gateway_config(tmp_path, 9, f"service_account_file: {key_file}")
    with pytest.raises(ConfigError) as caught:
        load_gateway(str(config))
    assert "backends.vx" in str(caught.value)
    assert "service_account_file" in str(caught.value)


def test_errors_keep_status_in_either_shape():
    vertex = provider(project=PROJECT, access_token=STATIC_TOKEN)
    google = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    error = vertex.parse_error(429, {}, json.dumps(google).encode())
    assert (error.status, error.code, error.message) == (
        429,
        "resource_exhausted",
        "Quota exceeded",
    )
    claude = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = vertex.parse_error(529, {}, json.dumps(claude).encode())
    assert (error.status, error.type, error.message) == (529, "overloaded_error", "Overloaded")
    for status in (401, 403):
        denied = {"error": {"code": status, "message": "token rejected", "status": "X"}}
        error = vertex.parse_error(status, {}, json.dumps(denied).encode())
        assert (error.status, error.code) == (502, "upstream_auth_failed")
        assert STATIC_TOKEN not in error.message


# ------------------------------------------------------------------------- service account


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenServer:
    """An OAuth token endpoint that verifies the service account's signed JWT (RS256)."""

    def __init__(self, key: rsa.RSAPrivateKey, email: str, lifetime: int = 3600) -> None:
        self.public = key.public_key()
        self.email = email
        self.lifetime = lifetime
        self.issued: list[str] = []
        self.failures_left = 0
        self.claims: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = UpstreamServer(self.behave)

    @property
    def token_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/token"

    def behave(self, received: Received) -> Reply:
        form = {k: v[0] for k, v in parse_qs(received.body.decode()).items()}
        if self.failures_left > 0:  # a 502 from a proxy in front: google-auth does not retry it
            self.failures_left -= 1
            return Reply(status=502, body=b'{"error": "bad_gateway"}')
        if received.path != "/token" or not self._valid(form):
            return Reply(status=400, body=b'{"error": "invalid_grant"}')
        with self.lock:
            token = f"ya29.sa-token-{len(self.issued) + 1}"
            self.issued.append(token)
        body = {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}
        return Reply(body=json.dumps(body).encode())

    def _valid(self, form: dict[str, str]) -> bool:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return False
        header, payload, signature = form["assertion"].split(".")
        try:
            self.public.verify(
                b64url_decode(signature),
                f"{header}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return False
        claims = json.loads(b64url_decode(payload))
        self.claims.append(claims)
        return claims["iss"] == self.email and claims["aud"] == GOOGLE_TOKEN_AUDIENCE

    def token_valid(self, header: str | None) -> bool:
        with self.lock:
            return header is not None and header.removeprefix("Bearer ") in self.issued


def service_account_file(directory: Path, key: rsa.RSAPrivateKey, token_uri: str) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "3f1a0c",
        "private_key": pem,
        "client_email": f"gateway@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1029384756",
        "token_uri": token_uri,
    }
    path = directory / "service-account.json"
    path.write_text(json.dumps(info))
    return path


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def token_server(rsa_key) -> Iterator[TokenServer]:
    server = TokenServer(rsa_key, f"gateway@{PROJECT}.iam.gserviceaccount.com")
    with server.server:
        yield server


# ------------------------------------------------------------------------- Vertex upstream


def bearer_check(valid: Callable[[str | None], bool]) -> Callable[[Received], Reply | None]:
    def check(received: Received) -> Reply | None:
        if (
            valid(received.headers.get("authorization"))
            and "x-goog-api-key" not in received.headers
        ):
            return None
        return google_error(
            401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
        )

    return check


CLAUDE_PATH = re.compile(
    re.escape(PREFIX)
    + r"/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)"
)
CLAUDE_USAGE = {"input_tokens": 12, "cache_read_input_tokens": 2}


def anthropic_error(status: int, kind: str, message: str) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Reply(status=status, body=json.dumps(body).encode())


def claude_blocks(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Content blocks and stop_reason, built from the Messages request (as in the API reference)."""
    content = body["messages"][-1]["content"]
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if results:
        said = "; ".join(f"{r['tool_use_id']}={json.dumps(r['content'])}" for r in results)
        return [{"type": "text", "text": f"Results: {said}"}], "end_turn"
    text = " ".join(b["text"] for b in blocks if b.get("type") == "text")
    if body.get("tools"):
        calls = [
            {"type": "tool_use", "id": f"toolu_0{i}", "name": t["name"], "input": {"query": text}}
            for i, t in enumerate(body["tools"])
        ]
        return [{"type": "text", "text": "Let me check."}, *calls], "tool_use"
    return [{"type": "text", "text": f"echo: {text}"}], "end_turn"


def claude_message(model: str, body: dict[str, Any]) -> dict[str, Any]:
    blocks, stop = claude_blocks(body)
    return {
        "id": "msg_vrtx_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {**CLAUDE_USAGE, "output_tokens": 9},
    }


def claude_stream(message: dict[str, Any]) -> list[bytes]:
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**CLAUDE_USAGE, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        events += claude_block_events(index, block)
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": 9},
        }
    )
    events.append({"type": "message_stop"})
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def claude_block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    if block["type"] == "text":
        first = {"type": "text", "text": ""}
        words = block["text"].split(" ")
        pieces = [words[0]] + [" " + w for w in words[1:]]
        deltas = [{"type": "text_delta", "text": p} for p in pieces]
    else:
        first = {**block, "input": {}}
        arguments = json.dumps(block["input"])
        half = len(arguments) // 2
        deltas = [
            {"type": "input_json_delta", "partial_json": p}
            for p in (arguments[:half], arguments[half:])
        ]
    return [
        {"type": "content_block_start", "index": index, "content_block": first},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def vertex_behavior(check: Callable[[Received], Reply | None]) -> Behavior:
    """Gemini under publishers/google, Claude (rawPredict) under publishers/anthropic."""
    gemini = gemini_behavior(f"{PREFIX}/google/models/", check)

    def behave(received: Received) -> Reply:
        if "/publishers/anthropic/" not in received.path:
            return gemini(received)
        match = CLAUDE_PATH.fullmatch(received.path)
        if match is None:
            return google_error(404, "NOT_FOUND", f"unexpected path {received.path}")
        denied = check(received)
        if denied is not None:
            return denied
        body = received.json
        if body.get("anthropic_version") != ANTHROPIC_VERSION or "model" in body:
            return anthropic_error(400, "invalid_request_error", "not a Vertex rawPredict body")
        message = claude_message(match["model"], body)
        if match["method"] == "streamRawPredict":
            return Reply(
                headers={"content-type": "text/event-stream"}, chunks=claude_stream(message)
            )
        return Reply(body=json.dumps(message).encode())

    return behave


# ------------------------------------------------------------------------- through the gateway


@pytest.fixture
def vertex_upstream():
    with UpstreamServer(
        vertex_behavior(bearer_check(lambda h: h == f"Bearer {STATIC_TOKEN}"))
    ) as server:
        yield server


def gateway_config(tmp_path: Path, port: int, credentials: str) -> Path:
    return write_config(
        tmp_path,
        f"""
        plugins: [vertex]
        backends:
          vx:
            provider: vertex
            base_url: "http://127.0.0.1:{port}"
            project: {PROJECT}
            location: {LOCATION}
            {credentials}
        routes:
          - {{match: {{model: ["gemini-*", "claude-*"]}}, backend: vx}}
        """,
    )


@pytest.fixture
def static_gateway(tmp_path, vertex_upstream):
    config = gateway_config(tmp_path, vertex_upstream.port, f"access_token: {STATIC_TOKEN}")
    with run_gateway(config) as gw:
        yield gw


def client_for(gw) -> openai.OpenAI:
    return gw.resource(
        "openai",
        lambda: openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0),
    )


def stream(client: openai.OpenAI, **kwargs: Any) -> list[Any]:
    return list(
        client.chat.completions.create(
            stream=True, stream_options={"include_usage": True}, **kwargs
        )
    )


def test_vertex_gemini_chat_and_stream(static_gateway, vertex_upstream):
    client = client_for(static_gateway)
    whole = client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
    assert flatten(whole) == {
        "content": "echo: hello vertex",
        "tool_calls": [],
        "finish_reason": "stop",
        "usage": {
            "prompt_tokens": 21,
            "completion_tokens": 6,
            "total_tokens": 27,
            "cached_tokens": 4,
            "reasoning_tokens": 3,
        },
    }
    sent = vertex_upstream.last
    assert sent.path == f"{PREFIX}/google/models/gemini-2.5-flash:generateContent"
    assert sent.headers["authorization"] == f"Bearer {STATIC_TOKEN}"
    assert CLIENT_KEY not in json.dumps(sent.headers)
    chunks = stream(client, model="gemini-2.5-flash", messages=HELLO)
    assert vertex_upstream.last.path.endswith(":streamGenerateContent?alt=sse")
    assert reassemble(chunks) == flatten(whole)


def test_vertex_gemini_tool_round_trip(static_gateway, vertex_upstream):
    client = client_for(static_gateway)
    messages: list[Any] = [{"role": "user", "content": "weather in Rome"}]
    first = client.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=[WEATHER_TOOL]
    )
    assert reassemble(
        stream(client, model="gemini-2.5-flash", messages=messages, tools=[WEATHER_TOOL])
    ) == (flatten(first))
    call = first.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"query": "weather in Rome", "n": 0},
    )
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = client.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].message.content == 'Results: get_weather={"output": "sunny"}'
    parts = vertex_upstream.last.json["contents"][-1]["parts"]
    assert parts == [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]


def test_vertex_gemini_safety_and_rate_limit(static_gateway, vertex_upstream):
    client = client_for(static_gateway)
    unsafe = [{"role": "user", "content": "unsafe please"}]
    answer = client.chat.completions.create(model="gemini-2.5-flash", messages=unsafe)
    assert answer.choices[0].finish_reason == "content_filter"
    assert reassemble(stream(client, model="gemini-2.5-flash", messages=unsafe))[
        "finish_reason"
    ] == ("content_filter")

    def limited(received: Received) -> Reply:
        reply = google_error(
            429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later."
        )
        reply.headers["retry-after"] = "9"
        return reply

    vertex_upstream.behavior = limited
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "9"
    assert caught.value.body["code"] == "resource_exhausted"


def test_vertex_claude_chat_stream_and_tools(static_gateway, vertex_upstream):
    client = client_for(static_gateway)
    model = "claude-sonnet-4@20250514"
    whole = client.chat.completions.create(model=model, messages=HELLO)
    assert (whole.choices[0].message.content, whole.choices[0].finish_reason) == (
        "echo: hello vertex",
        "stop",
    )
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (14, 9)
    sent = vertex_upstream.last
    assert sent.path == f"{PREFIX}/anthropic/models/{model}:rawPredict"
    assert sent.headers["authorization"] == f"Bearer {STATIC_TOKEN}"
    assert sent.json["anthropic_version"] == ANTHROPIC_VERSION
    assert reassemble(stream(client, model=model, messages=HELLO)) == flatten(whole)
    assert vertex_upstream.last.path.endswith(":streamRawPredict")

    messages: list[Any] = [{"role": "user", "content": "weather in Rome"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert reassemble(
        stream(client, model=model, messages=messages, tools=[WEATHER_TOOL])
    ) == flatten(first)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == ("toolu_00", "get_weather")
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    final = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == 'Results: toolu_00="sunny"'


def test_vertex_claude_overloaded_keeps_status(static_gateway, vertex_upstream):
    vertex_upstream.behavior = lambda received: anthropic_error(
        529, "overloaded_error", "Overloaded"
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client_for(static_gateway).chat.completions.create(model="claude-x", messages=HELLO)
    assert caught.value.status_code == 529
    assert caught.value.body["message"] == "Overloaded"


def test_service_account_token_reaches_the_upstream(tmp_path, rsa_key, token_server):
    key_file = service_account_file(tmp_path, rsa_key, token_server.token_uri)
    check = bearer_check(token_server.token_valid)
    with UpstreamServer(vertex_behavior(check)) as upstream:
        config = gateway_config(tmp_path, upstream.port, f"service_account_file: {key_file}")
        with run_gateway(config) as gw:
            answer = client_for(gw).chat.completions.create(
                model="gemini-2.5-flash", messages=HELLO
            )
            assert answer.choices[0].message.content == "echo: hello vertex"
            assert upstream.last.headers["authorization"] == "Bearer ya29.sa-token-1"
            chunks = stream(client_for(gw), model="claude-opus-4", messages=HELLO)
            assert reassemble(chunks)["content"] == "echo: hello vertex"
            assert upstream.last.headers["authorization"] == "Bearer ya29.sa-token-1"
    claims = token_server.claims[0]
    assert claims["scope"] == " ".join(SCOPES)
    assert claims["iss"] == f"gateway@{PROJECT}.iam.gserviceaccount.com"
    assert token_server.issued == ["ya29.sa-token-1"]


def controlled_sleep(sleep: ManualSleep) -> Callable[[Gateway], None]:
    """A `prepare` hook: the backend's token refresher waits on `sleep`, not on the clock."""

    def prepare(gateway: Gateway) -> None:
        gateway.backends["vx"].provider.tokens.sleep = sleep  # type: ignore[attr-defined]

    return prepare


def test_service_account_token_is_refreshed_before_expiry(tmp_path, rsa_key, token_server):
    sleep = ManualSleep()
    key_file = service_account_file(tmp_path, rsa_key, token_server.token_uri)
    with UpstreamServer(vertex_behavior(bearer_check(token_server.token_valid))) as upstream:
        config = gateway_config(tmp_path, upstream.port, f"service_account_file: {key_file}")
        with run_gateway(config, prepare=controlled_sleep(sleep)) as gw:
            (first_wait,) = sleep.wait_for_sleepers(1)
            assert token_server.issued == ["ya29.sa-token-1"]
            sleep.release()  # the hour, less the 300 s margin, has passed
            sleep.wait_for_sleepers(2)
            assert token_server.issued == ["ya29.sa-token-1", "ya29.sa-token-2"]
            answer = client_for(gw).chat.completions.create(
                model="gemini-2.5-flash", messages=HELLO
            )
            used = upstream.last.headers["authorization"]
    assert 3200 < first_wait <= 3300  # refreshed 300 s before the 3600 s lifetime ends
    assert answer.choices[0].finish_reason == "stop"
    assert used == "Bearer ya29.sa-token-2"


def test_failed_token_fetch_is_retried(tmp_path, rsa_key, token_server):
    token_server.failures_left = 1
    sleep = ManualSleep()
    key_file = service_account_file(tmp_path, rsa_key, token_server.token_uri)
    with UpstreamServer(vertex_behavior(bearer_check(token_server.token_valid))) as upstream:
        config = gateway_config(tmp_path, upstream.port, f"service_account_file: {key_file}")
        with run_gateway(config, prepare=controlled_sleep(sleep)) as gw:
            client = client_for(gw)
            assert sleep.wait_for_sleepers(1) == [1.0]  # the first fetch failed: retry in 1 s
            assert token_server.issued == []
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
            assert caught.value.body["code"] == "upstream_credentials_unavailable"
            sleep.release()
            sleep.wait_for_sleepers(2)
            answer = client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
    assert answer.choices[0].message.content == "echo: hello vertex"
    assert token_server.issued == ["ya29.sa-token-1"]
    assert upstream.last.headers["authorization"] == "Bearer ya29.sa-token-1"


def test_application_default_credentials_when_nothing_is_configured(
    tmp_path, rsa_key, token_server, monkeypatch
):
    key_file = service_account_file(tmp_path, rsa_key, token_server.token_uri)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    with UpstreamServer(vertex_behavior(bearer_check(token_server.token_valid))) as upstream:
        with run_gateway(gateway_config(tmp_path, upstream.port, "")) as gw:
            client_for(gw).chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
        assert upstream.last.headers["authorization"] == "Bearer ya29.sa-token-1"


def test_bad_service_account_token_is_502_without_the_token(tmp_path, rsa_key, token_server):
    key_file = service_account_file(tmp_path, rsa_key, token_server.token_uri)
    with UpstreamServer(vertex_behavior(bearer_check(lambda h: False))) as upstream:
        config = gateway_config(tmp_path, upstream.port, f"service_account_file: {key_file}")
        with run_gateway(config) as gw, pytest.raises(openai.APIStatusError) as caught:
            client_for(gw).chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert "ya29" not in caught.value.response.text
