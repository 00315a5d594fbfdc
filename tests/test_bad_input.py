"""Bad client input and failing upstreams, through a real gateway in front of real upstreams.

Every rejection must be an answer in OpenAI's error shape (`{"error": {"message", "type",
"param", "code"}}`) with the right status and code, never a 500; a rejected request must not
reach the upstream; and the gateway must keep serving afterwards. Requests go over raw HTTP
(http.client, or a bare socket where framing matters) and through the official openai SDK.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from modelway.testing.fake_openai import openai_behavior, openai_completion, openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Behavior, Received, Reply, UpstreamServer

MAX_BODY = 1000
BACKEND_KEY = "sk-backend-SECRET-4f1c2b9e"
GATEWAY_KEYS = ("sk-gw-alpha-111", "sk-gw-beta-222")
TIMEOUT = 10.0
CHAT = "/v1/chat/completions"
USER_HI: list[Any] = [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- helpers


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def _answer(response: http.client.HTTPResponse) -> Answer:
    body = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return Answer(response.status, headers, body)


def send(
    gw: RunningGateway,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request on a fresh connection; JSON content type unless `headers` say otherwise."""
    if isinstance(body, str):
        body = body.encode()
    all_headers = {"content-type": "application/json"} if body is not None else {}
    all_headers.update(headers or {})
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=all_headers)
        return _answer(conn.getresponse())
    finally:
        conn.close()


def post_json(gw: RunningGateway, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    return send(gw, "POST", CHAT, json.dumps(payload), headers)


def send_raw(gw: RunningGateway, data: bytes) -> Answer:
    """Bytes written to the gateway's socket as they are; the answer parsed as HTTP/1.1."""
    with socket.create_connection((gw.host, gw.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return _answer(response)


def chunked(body: bytes, size: int = 256) -> bytes:
    """`body` in HTTP/1.1 chunked transfer encoding."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def chat(model: str = "gpt-test", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER_HI, **fields}


def assert_error(
    answer: Answer,
    status: int,
    code: str | None,
    *,
    param: str | None = None,
    kind: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """`answer` is an OpenAI-shaped error with this status and code; returns the error object."""
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    data = answer.json
    assert isinstance(data, dict) and set(data) == {"error"}, data
    error = data["error"]
    assert set(error) >= {"message", "type", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["code"] == code, error
    if param is not None:
        assert error.get("param") == param, error
    if kind is not None:
        assert error["type"] == kind, error
    if message is not None:
        assert message in error["message"], error
    return error


def sse_events(body: bytes) -> list[str]:
    """The `data` of every event in an SSE body (LF line ends, as the gateway writes them)."""
    events = []
    for block in body.decode().split("\n\n"):
        lines = [line[len("data: ") :] for line in block.split("\n") if line.startswith("data: ")]
        if lines:
            events.append("\n".join(lines))
    return events


def assert_serves(
    gw: RunningGateway, upstream: UpstreamServer, headers: dict[str, str] | None = None
) -> None:
    """A good request still works, and it is the only thing the upstream has seen."""
    good = chat(messages=[{"role": "user", "content": "still there?"}])
    answer = post_json(gw, good, headers)
    assert answer.status == 200, answer.body
    assert answer.json["choices"][0]["message"]["content"] == "echo: still there?"
    assert len(upstream.received) == 1, [r.body for r in upstream.received]


def sdk(gw: RunningGateway, api_key: str = "sk-client") -> openai.OpenAI:
    return gw.resource(
        ("openai", api_key),
        lambda: openai.OpenAI(
            base_url=gw.base_url, api_key=api_key, max_retries=0, timeout=TIMEOUT
        ),
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def good_upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server


@pytest.fixture(scope="module")
def flaky_upstream() -> Iterator[UpstreamServer]:
    """An upstream whose behavior each test sets."""
    with UpstreamServer() as server:
        yield server


# Gateways are per test: mitmproxy keeps its master in a process-wide global, so of two
# gateways alive in one process the newer one serves the connections of both.


@pytest.fixture
def gw(
    tmp_path: Path, good_upstream: UpstreamServer, flaky_upstream: UpstreamServer, closed_port: int
) -> Iterator[RunningGateway]:
    """`gpt-*` to a good upstream, `flaky-*` to the test's upstream, `refused-*` to nothing."""
    config = write_config(
        tmp_path,
        f"""
        gateway: {{max_body_bytes: {MAX_BODY}}}
        plugins: {{openai: , access_log: {{enabled: false}}}}
        backends:
          good: {{provider: openai, base_url: "{good_upstream.url}", api_key: sk-gateway-good}}
          flaky: {{provider: openai, base_url: "{flaky_upstream.url}", api_key: {BACKEND_KEY}}}
          refused:
            provider: openai
            base_url: "http://127.0.0.1:{closed_port}/v1"
            api_key: sk-gateway-refused
        routes:
          - {{name: good, match: {{model: "gpt-*"}}, backend: good}}
          - {{name: flaky, match: {{model: "flaky-*"}}, backend: flaky}}
          - {{name: refused, match: {{model: "refused-*"}}, backend: refused}}
        """,
    )
    with run_gateway(config) as running:
        yield running


@pytest.fixture
def keyed_gw(tmp_path: Path, good_upstream: UpstreamServer) -> Iterator[RunningGateway]:
    """A gateway that requires one of its own API keys."""
    keys = ", ".join(GATEWAY_KEYS)
    config = write_config(
        tmp_path,
        f"""
        gateway: {{api_keys: [{keys}]}}
        plugins: {{openai: , access_log: {{enabled: false}}}}
        backends:
          good: {{provider: openai, base_url: "{good_upstream.url}", api_key: sk-gateway-good}}
        routes:
          - {{match: {{model: "gpt-*"}}, backend: good}}
        """,
    )
    with run_gateway(config) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(good_upstream: UpstreamServer, flaky_upstream: UpstreamServer) -> None:
    """Each test starts with empty upstream records and a well-behaved flaky upstream."""
    for server in (good_upstream, flaky_upstream):
        server.received.clear()
    flaky_upstream.behavior = openai_behavior


def replying(reply: Reply) -> Behavior:
    """An upstream behavior that always answers `reply`."""

    def behavior(received: Received) -> Reply:
        return reply

    return behavior


# --------------------------------------------------------------------------- the request body


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        pytest.param(
            '{"model": "gpt-test", "messages": [', "invalid_json", "not valid JSON", id="truncated"
        ),
        pytest.param("{'model': 'gpt-test'}", "invalid_json", "not valid JSON", id="single-quotes"),
        pytest.param("not json at all", "invalid_json", "not valid JSON", id="text"),
        pytest.param(b'{"model": "gpt-\xff"}', "invalid_json", "not valid JSON", id="bad-utf8"),
        pytest.param("[]", "invalid_body", "must be a JSON object, not list", id="array"),
        pytest.param('[{"model": "gpt-test"}]', "invalid_body", "not list", id="array-of-object"),
        pytest.param('"gpt-test"', "invalid_body", "not str", id="string"),
        pytest.param("42", "invalid_body", "not int", id="number"),
        pytest.param("null", "invalid_body", "not NoneType", id="null"),
        pytest.param("", "empty_body", "empty", id="empty"),
        pytest.param("  \n\t ", "empty_body", "empty", id="whitespace"),
    ],
)
def test_body_that_is_not_a_json_object_is_400(gw, good_upstream, body, code, message):
    answer = send(gw, "POST", CHAT, body)
    assert_error(answer, 400, code, kind="invalid_request_error", message=message)
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_non_standard_json_constants_are_rejected(gw, good_upstream):
    """NaN/Infinity are not JSON (RFC 8259); forwarding them makes the upstream choke."""
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], '
        body += f'"frequency_penalty": {constant}}}'
        answer = send(gw, "POST", CHAT, body)
        assert_error(answer, 400, "invalid_json")
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_lone_surrogate_is_400_invalid_unicode_not_500(gw, good_upstream):
    """JSON's `\\ud800` escape decodes to half a character: it cannot be sent upstream."""
    body = '{"model": "gpt-test", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    answer = send(gw, "POST", CHAT, body)
    error = assert_error(answer, 400, "invalid_unicode", message="surrogate")
    assert "U+D800" in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_missing_model_is_400(gw, good_upstream):
    answer = post_json(gw, {"messages": USER_HI})
    error = assert_error(answer, 400, "missing_model", param="model")
    assert "model" in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


@pytest.mark.parametrize("model", [5, None, True, ["gpt-test"], {"name": "gpt-test"}, ""])
def test_model_that_is_not_a_nonempty_string_is_400(gw, good_upstream, model):
    answer = post_json(gw, chat(model=model))
    error = assert_error(answer, 400, "invalid_value", param="model")
    assert "'model'" in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_unknown_model_is_404_model_not_found(gw, good_upstream):
    answer = post_json(gw, chat(model="llama-nobody-serves"))
    error = assert_error(answer, 404, "model_not_found", kind="invalid_request_error")
    assert "llama-nobody-serves" in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        pytest.param({"messages": "hi"}, "messages", id="messages-a-string"),
        pytest.param(
            {"messages": {"role": "user", "content": "hi"}}, "messages", id="messages-an-object"
        ),
        pytest.param({"messages": []}, "messages", id="messages-empty"),
        pytest.param({"messages": [{"content": "hi"}]}, "messages[0].role", id="no-role"),
        pytest.param(
            {"messages": [{"role": "wizard", "content": "hi"}]},
            "messages[0].role",
            id="role-invalid",
        ),
        pytest.param(
            {"messages": [{"role": 1, "content": "hi"}]}, "messages[0].role", id="role-a-number"
        ),
        pytest.param({"messages": ["hi"]}, "messages[0]", id="message-a-string"),
        pytest.param(
            {"messages": [*USER_HI, {"role": "user", "content": 5}]},
            "messages[1].content",
            id="content-a-number",
        ),
        pytest.param({"temperature": "hot"}, "temperature", id="temperature-a-word"),
        pytest.param({"temperature": "0.7"}, "temperature", id="temperature-a-numeric-string"),
        pytest.param({"temperature": True}, "temperature", id="temperature-a-bool"),
        pytest.param({"temperature": 3}, "temperature", id="temperature-too-high"),
        pytest.param({"top_p": "1"}, "top_p", id="top_p-a-string"),
        pytest.param({"stream": "true"}, "stream", id="stream-a-string"),
        pytest.param({"stream": 1}, "stream", id="stream-a-number"),
        pytest.param({"max_tokens": -1}, "max_tokens", id="max_tokens-negative"),
        pytest.param({"max_tokens": 0}, "max_tokens", id="max_tokens-zero"),
        pytest.param({"max_tokens": "10"}, "max_tokens", id="max_tokens-a-string"),
        pytest.param({"max_tokens": 1.5}, "max_tokens", id="max_tokens-a-float"),
        pytest.param({"n": 0}, "n", id="n-zero"),
        pytest.param({"stop": 5}, "stop", id="stop-a-number"),
        pytest.param(
            {"stream_options": {"include_usage": "yes"}},
            "stream_options.include_usage",
            id="include_usage-a-string",
        ),
        pytest.param({"stream_options": "yes"}, "stream_options", id="stream_options-a-string"),
    ],
)
def test_wrong_field_types_are_400_naming_the_field(gw, good_upstream, fields, param):
    answer = post_json(gw, chat(**fields))
    error = assert_error(answer, 400, "invalid_value", param=param, kind="invalid_request_error")
    assert f"'{param}'" in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_embeddings_with_wrong_input_type_is_400(gw, good_upstream):
    answer = send(gw, "POST", "/v1/embeddings", json.dumps({"model": "gpt-emb", "input": 5}))
    assert_error(answer, 400, "invalid_value", param="input")
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_deeply_nested_json_is_400_not_500(tmp_path, good_upstream):
    """Nesting deeper than the JSON parser's recursion limit, well under the size limit."""
    config = write_config(
        tmp_path,
        f"""
        plugins: {{openai: , access_log: {{enabled: false}}}}
        backends:
          good: {{provider: openai, base_url: "{good_upstream.url}", api_key: sk-gateway-good}}
        routes:
          - {{match: {{model: "gpt-*"}}, backend: good}}
    """,
    )
    depth = 100_000
    body = '{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "x": '
    body += "[" * depth + "]" * depth + "}"
    with run_gateway(config) as gateway:
        answer = send(gateway, "POST", CHAT, body)
        assert_error(answer, 400, "invalid_json")
        assert good_upstream.received == []
        assert_serves(gateway, good_upstream)


# --------------------------------------------------------------------------- content type


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_non_json_content_type_is_415(gw, good_upstream, content_type):
    body = json.dumps(chat()) if "form" not in content_type else "model=gpt-test&messages=hi"
    answer = send(gw, "POST", CHAT, body, {"content-type": content_type})
    error = assert_error(answer, 415, "unsupported_media_type")
    assert content_type.split(";")[0] in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.x+json"],
)
def test_json_content_type_variants_are_accepted(gw, good_upstream, content_type):
    answer = send(gw, "POST", CHAT, json.dumps(chat()), {"content-type": content_type})
    assert answer.status == 200, answer.body
    assert answer.json["choices"][0]["message"]["content"] == "echo: hi"
    assert len(good_upstream.received) == 1


# --------------------------------------------------------------------------- body size


def padded(size: int) -> bytes:
    """A valid chat request of exactly `size` bytes (padded with trailing whitespace)."""
    body = json.dumps(chat()).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_body_at_the_limit_is_accepted(gw, good_upstream):
    answer = send(gw, "POST", CHAT, padded(MAX_BODY))
    assert answer.status == 200, answer.body
    assert len(good_upstream.received) == 1


def test_body_over_the_limit_with_content_length_is_413(gw, good_upstream):
    answer = send(gw, "POST", CHAT, padded(MAX_BODY + 1))
    error = assert_error(answer, 413, "request_too_large")
    assert str(MAX_BODY) in error["message"]
    big = json.dumps(chat(messages=[{"role": "user", "content": "x" * 5000}]))
    assert_error(send(gw, "POST", CHAT, big), 413, "request_too_large")
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def _chunked_request(body: bytes) -> bytes:
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + chunked(body)


def test_chunked_body_under_the_limit_is_accepted(gw, good_upstream):
    answer = send_raw(gw, _chunked_request(padded(MAX_BODY)))
    assert answer.status == 200, answer.body
    assert answer.json["choices"][0]["message"]["content"] == "echo: hi"
    assert len(good_upstream.received) == 1


def test_chunked_body_over_the_limit_is_413(gw, good_upstream):
    answer = send_raw(gw, _chunked_request(padded(MAX_BODY * 3)))
    assert_error(answer, 413, "request_too_large")
    answer = send_raw(gw, _chunked_request(padded(MAX_BODY + 1)))
    assert_error(answer, 413, "request_too_large")
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_huge_declared_content_length_is_413_in_openai_shape(gw, good_upstream):
    """A client announcing a gigabyte gets the gateway's own 413, without sending the body."""
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000000\r\n\r\n"
    )
    answer = send_raw(gw, head.encode())
    assert_error(answer, 413, "request_too_large")
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


# --------------------------------------------------------------------------- paths and methods


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/chat/completions"),
        ("GET", "/"),
        ("POST", "/v2/chat/completions"),
        ("GET", "/v1/chat"),
        ("DELETE", "/nope"),
    ],
)
def test_unknown_path_is_404(gw, good_upstream, method, path):
    body = json.dumps(chat()) if method == "POST" else None
    answer = send(gw, method, path, body)
    error = assert_error(answer, 404, "unknown_url")
    assert path in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", CHAT),
        ("DELETE", CHAT),
        ("GET", "/v1/embeddings"),
        ("POST", "/v1/models"),
    ],
)
def test_wrong_method_on_a_known_path_is_405(gw, good_upstream, method, path):
    body = json.dumps(chat()) if method != "GET" else None
    answer = send(gw, method, path, body)
    error = assert_error(answer, 405, "method_not_allowed")
    assert method in error["message"] and path in error["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_unknown_model_via_models_endpoint_is_404(gw, good_upstream):
    answer = send(gw, "GET", "/v1/models/llama-nobody-serves")
    assert_error(answer, 404, "model_not_found", param="model")
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


# --------------------------------------------------------------------------- gateway api keys


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"authorization": "Bearer sk-gw-wrong"}, id="wrong-bearer"),
        pytest.param({"authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"authorization": f"Basic {GATEWAY_KEYS[0]}"}, id="basic-scheme"),
        pytest.param({"x-api-key": "sk-gw-wrong"}, id="wrong-x-api-key"),
        pytest.param({"authorization": f"Bearer {GATEWAY_KEYS[0]}x"}, id="key-with-suffix"),
        pytest.param({"authorization": f"Bearer {GATEWAY_KEYS[0][:-1]}"}, id="key-prefix"),
    ],
)
def test_missing_or_wrong_gateway_key_is_401(keyed_gw, good_upstream, headers):
    answer = post_json(keyed_gw, chat(), headers)
    error = assert_error(answer, 401, "invalid_api_key")
    for key in GATEWAY_KEYS:
        assert key not in answer.body.decode()
    assert "API key" in error["message"]
    assert_error(send(keyed_gw, "GET", "/v1/models", headers=headers), 401, "invalid_api_key")
    assert good_upstream.received == []
    assert_serves(keyed_gw, good_upstream, {"authorization": f"Bearer {GATEWAY_KEYS[0]}"})


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"authorization": f"Bearer {GATEWAY_KEYS[0]}"}, id="bearer-first"),
        pytest.param({"authorization": f"bearer {GATEWAY_KEYS[1]}"}, id="bearer-second"),
        pytest.param({"x-api-key": GATEWAY_KEYS[0]}, id="x-api-key"),
    ],
)
def test_right_gateway_key_is_200(keyed_gw, good_upstream, headers):
    answer = post_json(keyed_gw, chat(), headers)
    assert answer.status == 200, answer.body
    assert answer.json["choices"][0]["message"]["content"] == "echo: hi"
    assert len(good_upstream.received) == 1
    # The client's key for the gateway is not the key the backend sees.
    assert good_upstream.last.headers["authorization"] == "Bearer sk-gateway-good"
    assert good_upstream.last.headers.get("x-api-key") != GATEWAY_KEYS[0]
    models = send(keyed_gw, "GET", "/v1/models", headers=headers)
    assert models.status == 200 and models.json["object"] == "list"


def test_gateway_key_through_the_sdk(keyed_gw, good_upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(keyed_gw, "sk-gw-wrong").chat.completions.create(model="gpt-test", messages=USER_HI)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert good_upstream.received == []
    answer = sdk(keyed_gw, GATEWAY_KEYS[1]).chat.completions.create(
        model="gpt-test", messages=USER_HI
    )
    assert answer.choices[0].message.content == "echo: hi"
    assert len(good_upstream.received) == 1


def test_health_check_needs_no_key(keyed_gw):
    answer = send(keyed_gw, "GET", "/healthz")
    assert answer.status == 200 and answer.json == {"status": "ok"}


# --------------------------------------------------------------------------- bad input via the SDK


def test_sdk_unknown_model_is_not_found(gw, good_upstream):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(gw).chat.completions.create(model="llama-nobody-serves", messages=USER_HI)
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert isinstance(caught.value.body, dict)
    assert "llama-nobody-serves" in caught.value.body["message"]
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        pytest.param({"temperature": "hot"}, "temperature", id="temperature-a-string"),
        pytest.param({"max_tokens": -5}, "max_tokens", id="max_tokens-negative"),
        pytest.param(
            {"messages": [{"role": "wizard", "content": "hi"}]},
            "messages[0].role",
            id="role-invalid",
        ),
        pytest.param({"messages": [{"content": "hi"}]}, "messages[0].role", id="no-role"),
        pytest.param({"n": "two"}, "n", id="n-a-string"),
    ],
)
def test_sdk_wrong_types_are_bad_request(gw, good_upstream, fields, param):
    arguments = {"model": "gpt-test", "messages": USER_HI, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gw).chat.completions.create(**arguments)
    error = caught.value
    assert error.status_code == 400
    assert error.code == "invalid_value"
    assert error.param == param
    assert isinstance(error.body, dict) and error.body["type"] == "invalid_request_error"
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


def test_sdk_body_too_large_is_413(gw, good_upstream):
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gw).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "x" * (2 * MAX_BODY)}]
        )
    assert caught.value.status_code == 413
    assert caught.value.code == "request_too_large"
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)


# --------------------------------------------------------------------------- upstream failures


def test_connection_refused_is_502(gw, good_upstream):
    answer = post_json(gw, chat(model="refused-model"))
    error = assert_error(answer, 502, "upstream_unavailable", kind="server_error")
    assert "refused" in error["message"]  # the backend's name, not its address
    assert_serves(gw, good_upstream)


def test_connection_refused_via_sdk_is_internal_server_error(gw, good_upstream):
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gw).chat.completions.create(model="refused-model", messages=USER_HI)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unavailable"
    assert_serves(gw, good_upstream)


def test_upstream_protocol_garbage_is_502(gw, good_upstream, flaky_upstream):
    flaky_upstream.behavior = replying(Reply(raw=b"garbage\r\n\r\n"))
    answer = post_json(gw, chat(model="flaky-model"))
    assert_error(answer, 502, "upstream_unavailable", kind="server_error")
    assert len(flaky_upstream.received) == 1
    assert_serves(gw, good_upstream)


def test_upstream_closing_without_answer_is_502(gw, good_upstream, flaky_upstream):
    flaky_upstream.behavior = replying(Reply(raw=b""))
    answer = post_json(gw, chat(model="flaky-model"))
    assert_error(answer, 502, "upstream_unavailable", kind="server_error")
    assert_serves(gw, good_upstream)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        pytest.param(
            Reply(body=b"<html>oops</html>", headers={"content-type": "text/html"}),
            "not JSON",
            id="html",
        ),
        pytest.param(Reply(body=b'{"id": "x", "choi'), "not JSON", id="truncated-json"),
        pytest.param(
            Reply(body=b'{"id": "chatcmpl-1", "object": "chat.completion"}'),
            "'choices'",
            id="no-choices",
        ),
        pytest.param(Reply(body=b'{"choices": "none"}'), "'choices'", id="choices-not-a-list"),
        pytest.param(Reply(body=b"[1, 2]"), "'choices'", id="json-array"),
    ],
)
def test_upstream_200_with_unusable_body_is_502(gw, good_upstream, flaky_upstream, reply, message):
    flaky_upstream.behavior = replying(reply)
    answer = post_json(gw, chat(model="flaky-model"))
    assert_error(answer, 502, "upstream_invalid_response", kind="server_error", message=message)
    assert len(flaky_upstream.received) == 1
    assert_serves(gw, good_upstream)


def _error_reply(status: int, message: str, kind: str, code: str | None, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(
        status=status,
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
    )


def test_upstream_500_passes_its_error_on(gw, good_upstream, flaky_upstream):
    message = "The server had an error while processing your request. Sorry about that!"
    flaky_upstream.behavior = replying(_error_reply(500, message, "server_error", "engine_down"))
    answer = post_json(gw, chat(model="flaky-model"))
    error = assert_error(answer, 500, "engine_down", kind="server_error")
    assert error["message"] == message
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gw).chat.completions.create(model="flaky-model", messages=USER_HI)
    assert caught.value.status_code == 500
    assert caught.value.code == "engine_down"
    assert isinstance(caught.value.body, dict) and caught.value.body["message"] == message
    assert_serves(gw, good_upstream)


def test_upstream_500_without_error_body_is_500(gw, good_upstream, flaky_upstream):
    flaky_upstream.behavior = replying(
        Reply(status=500, body=b"Internal Server Error", headers={"content-type": "text/plain"})
    )
    answer = post_json(gw, chat(model="flaky-model"))
    assert_error(answer, 500, "upstream_error", kind="server_error", message="HTTP 500")
    assert_serves(gw, good_upstream)


def test_upstream_429_passes_status_and_retry_after(gw, good_upstream, flaky_upstream):
    message = "Rate limit reached for requests"
    flaky_upstream.behavior = replying(
        _error_reply(429, message, "requests", "rate_limit_exceeded", **{"retry-after": "7"})
    )
    answer = post_json(gw, chat(model="flaky-model"))
    error = assert_error(answer, 429, "rate_limit_exceeded")
    assert error["message"] == message
    assert answer.headers.get("retry-after") == "7"
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gw).chat.completions.create(model="flaky-model", messages=USER_HI)
    assert caught.value.status_code == 429
    assert caught.value.response.headers.get("retry-after") == "7"
    assert len(flaky_upstream.received) == 2  # max_retries=0: no retry by the SDK either
    assert_serves(gw, good_upstream)


def test_upstream_401_for_the_gateway_key_is_502_without_the_key(gw, good_upstream, flaky_upstream):
    leaked = f"Incorrect API key provided: {BACKEND_KEY}. You can find your API key at ..."
    flaky_upstream.behavior = replying(
        _error_reply(401, leaked, "invalid_request_error", "invalid_api_key")
    )
    answer = post_json(gw, chat(model="flaky-model"))
    error = assert_error(answer, 502, "upstream_auth_failed", kind="server_error")
    assert "401" in error["message"]
    text = answer.body.decode()
    assert BACKEND_KEY not in text
    assert BACKEND_KEY[-8:] not in text
    assert "Incorrect API key" not in text
    assert flaky_upstream.last.headers["authorization"] == f"Bearer {BACKEND_KEY}"
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gw).chat.completions.create(model="flaky-model", messages=USER_HI)
    assert caught.value.code == "upstream_auth_failed"
    assert BACKEND_KEY not in str(caught.value)
    assert_serves(gw, good_upstream)


def test_upstream_400_passes_its_error_on(gw, good_upstream, flaky_upstream):
    message = "This model's maximum context length is 8192 tokens."
    flaky_upstream.behavior = replying(
        _error_reply(400, message, "invalid_request_error", "context_length_exceeded")
    )
    answer = post_json(gw, chat(model="flaky-model"))
    error = assert_error(answer, 400, "context_length_exceeded", kind="invalid_request_error")
    assert error["message"] == message
    assert_serves(gw, good_upstream)


# --------------------------------------------------------------------------- streams


def stream_request(gw: RunningGateway, payload: dict[str, Any]) -> Answer:
    """A streamed request; the whole answer read with a socket timeout (so a hang fails)."""
    return send(gw, "POST", CHAT, json.dumps({**payload, "stream": True}))


def test_good_stream_ends_with_done(gw, good_upstream, flaky_upstream):
    answer = stream_request(gw, chat(model="flaky-model"))
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = sse_events(answer.body)
    assert events[-1] == "[DONE]"
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content", "")
        for e in events[:-1]
        if json.loads(e)["choices"]
    )
    assert text == "echo: hi"


def _dropping_stream(after: int) -> Behavior:
    """Five streamed pieces, the connection cut after `after` of them."""

    def behavior(received: Received) -> Reply:
        chunks = openai_stream_chunks(received.json, ["one", "two", "three", "four", "five"])
        return Reply(headers={"content-type": "text/event-stream"}, chunks=chunks, drop_after=after)

    return behavior


def test_stream_dropped_midway_ends_with_an_error_event(gw, good_upstream, flaky_upstream):
    flaky_upstream.behavior = _dropping_stream(2)
    answer = stream_request(gw, chat(model="flaky-model"))
    assert answer.status == 200
    events = sse_events(answer.body)
    assert "[DONE]" not in events, "a cut-off stream must not look complete"
    assert len(events) == 3, events
    first, second = (json.loads(e) for e in events[:2])
    assert first["choices"][0]["delta"]["content"] == "one"
    assert second["choices"][0]["delta"]["content"] == " two"
    last = json.loads(events[-1])
    assert set(last) == {"error"}, last
    assert last["error"]["type"] == "server_error"
    assert isinstance(last["error"]["message"], str) and last["error"]["message"]
    assert last["error"]["code"]
    assert_serves(gw, good_upstream)


def test_stream_dropped_midway_raises_in_the_sdk(gw, good_upstream, flaky_upstream):
    flaky_upstream.behavior = _dropping_stream(2)
    stream = sdk(gw).chat.completions.create(model="flaky-model", messages=USER_HI, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices:
                seen.append(chunk.choices[0].delta.content or "")
    assert seen == ["one", " two"]
    assert caught.value.message
    assert_serves(gw, good_upstream)


def test_stream_error_event_keeps_the_chunks_before_it(gw, good_upstream, flaky_upstream):
    """A chunk and an upstream `error` event that arrive in one read: the chunk still goes
    out, then the error, and nothing after it."""

    def behavior(received: Received) -> Reply:
        first = openai_stream_chunks(received.json, ["one", "two"])[0]
        error = {"error": {"message": "overloaded", "type": "server_error", "code": "overloaded"}}
        together = first + b"data: " + json.dumps(error).encode() + b"\n\n"
        return Reply(headers={"content-type": "text/event-stream"}, chunks=[together])

    flaky_upstream.behavior = behavior
    answer = stream_request(gw, chat(model="flaky-model"))
    assert answer.status == 200
    events = sse_events(answer.body)
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["message"] == "overloaded"
    assert last["error"]["code"] == "overloaded"
    assert len(events) == 2, events
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "one"
    assert_serves(gw, good_upstream)


def test_streamed_request_to_refused_upstream_is_502_json(gw, good_upstream):
    answer = stream_request(gw, chat(model="refused-model"))
    assert_error(answer, 502, "upstream_unavailable", kind="server_error")
    assert "data:" not in answer.body.decode()
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gw).chat.completions.create(model="refused-model", messages=USER_HI, stream=True)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_unavailable"
    assert_serves(gw, good_upstream)


def test_streamed_request_answered_with_json_is_502(gw, good_upstream, flaky_upstream):
    def behavior(received: Received) -> Reply:
        return Reply(body=json.dumps(openai_completion(received.json)).encode())

    flaky_upstream.behavior = behavior
    answer = stream_request(gw, chat(model="flaky-model"))
    assert_error(answer, 502, "upstream_not_streaming", kind="server_error")
    assert_serves(gw, good_upstream)


def test_streamed_request_with_upstream_429_is_429_json(gw, good_upstream, flaky_upstream):
    flaky_upstream.behavior = replying(
        _error_reply(429, "slow down", "requests", "rate_limit_exceeded", **{"retry-after": "7"})
    )
    answer = stream_request(gw, chat(model="flaky-model"))
    assert_error(answer, 429, "rate_limit_exceeded", message="slow down")
    assert answer.headers.get("retry-after") == "7"
    assert_serves(gw, good_upstream)


def test_gateway_survives_a_burst_of_bad_requests(gw, good_upstream):
    bodies = [
        "{",
        "[]",
        "",
        '{"model": 1}',
        json.dumps(chat(model="nope")),
        json.dumps(chat(temperature="hot")),
    ]
    statuses = [send(gw, "POST", CHAT, body).status for body in bodies * 5]
    assert statuses == [400, 400, 400, 400, 404, 400] * 5
    assert good_upstream.received == []
    assert_serves(gw, good_upstream)
