"""The fuzz kit: a real gateway in front of real fake upstreams, raw requests, and the checks.

`fuzz_gateway()` starts one upstream per wire format (OpenAI chat, embeddings and Responses;
Anthropic Messages and count_tokens; Gemini generateContent, streamGenerateContent and
countTokens) and a gateway with every ingress API, routed by model name: `oa-*` to the
OpenAI backend (the Responses API on its own lane), `an-*` to Anthropic, `ge-*` to Gemini, so
each ingress body takes the same-API lane and the translated hub lane. The upstreams answer
anything they cannot read with a 400 in their own API's shape, as the real APIs do, so a 5xx
the client sees is always the gateway's own.

`send` writes one request as raw bytes on a fresh socket (any method, path bytes, header
bytes, framing) and reads the whole answer, streams included. `check` asserts what the fuzz
suite and the long run hold every answer to: no 5xx, an error body in the shape of the API
the path belongs to, and no traceback in the gateway's log since the last check.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from modelway.testing.fake_anthropic import AnthropicMessages
from modelway.testing.fake_gemini import gemini_behavior
from modelway.testing.fake_openai import OpenAIChat
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Behavior, Received, Reply, UpstreamServer
from tests.responses_upstreams import ResponsesBackend

UPSTREAM_KEY = "sk-upstream"
CLIENT_KEY = "sk-fuzz-client"
TIMEOUT = 15.0
MODELS = ("oa-chat", "an-claude", "ge-gemini")


# ----------------------------------------------------------------------------- upstreams


def _openai_error(status: int, message: str) -> Reply:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return Reply.json({"error": error}, status)


def _anthropic_error(status: int, message: str) -> Reply:
    error = {"type": "invalid_request_error", "message": message}
    return Reply.json({"type": "error", "error": error}, status)


def _gemini_error(status: int, message: str) -> Reply:
    return Reply.json(
        {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}, status
    )


def tolerant(behavior: Behavior, refuse: Callable[[int, str], Reply]) -> Behavior:
    """`behavior`, but a request it cannot read is a 400 in its API's shape (a real API
    rejects a malformed request; it does not answer 500)."""

    def behave(received: Received) -> Reply:
        try:
            return behavior(received)
        except Exception as exc:  # the fake could not read what the gateway passed on
            return refuse(400, f"invalid request: {type(exc).__name__}")

    return behave


def openai_upstream() -> Behavior:
    chat = OpenAIChat()
    responses = ResponsesBackend()

    def behave(received: Received) -> Reply:
        path = received.path.split("?")[0]
        if "/responses" in path:
            return responses(received)
        if path.endswith(("/chat/completions", "/embeddings")):
            return chat(received)
        return _openai_error(404, f"unknown path {path}")

    return tolerant(behave, _openai_error)


def anthropic_upstream() -> Behavior:
    messages = AnthropicMessages(api_key=UPSTREAM_KEY)

    def behave(received: Received) -> Reply:
        if received.path.split("?")[0] == "/v1/messages/count_tokens":
            body = received.json
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return _anthropic_error(400, "messages: Field required")
            return Reply.json({"input_tokens": 3 + len(json.dumps(body)) // 4})
        return messages(received)

    return tolerant(behave, _anthropic_error)


def gemini_upstream() -> Behavior:
    generate = gemini_behavior()

    def behave(received: Received) -> Reply:
        if received.path.split("?")[0].endswith(":countTokens"):
            body = received.json
            if not isinstance(body, dict):
                return _gemini_error(400, "Invalid JSON payload")
            return Reply.json({"totalTokens": 3 + len(json.dumps(body)) // 4})
        return generate(received)

    return tolerant(behave, _gemini_error)


def config(urls: dict[str, str], **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"api_keys": [CLIENT_KEY], **gateway},
        "plugins": {
            "openai": None,
            "anthropic": None,
            "gemini": None,
            "anthropic_api": None,
            "gemini_api": None,
            "responses_api": None,
            "access_log": {"path": os.devnull},
        },
        "backends": {
            "oa": {
                "provider": "openai",
                "base_url": urls["oa"] + "/v1",
                "api_key": UPSTREAM_KEY,
                "responses": True,
            },
            "an": {"provider": "anthropic", "base_url": urls["an"], "api_key": UPSTREAM_KEY},
            "ge": {"provider": "gemini", "base_url": urls["ge"], "api_key": UPSTREAM_KEY},
        },
        "routes": [
            {"match": {"model": "oa-*"}, "backend": "oa"},
            {"match": {"model": "an-*"}, "backend": "an"},
            {"match": {"model": "ge-*"}, "backend": "ge"},
        ],
    }


# ----------------------------------------------------------------------------- the log


class TracebackLog(logging.Handler):
    """Every log record that carries a traceback, says that mitmproxy crashed, or is an error
    of modelway or mitmproxy (an internal error, an error answer that could not be encoded)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format is itself a finding
            message = repr(record.msg)
        text = ""
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
        elif "Traceback (most recent call last)" in message or "has crashed" in message:
            text = message
        elif record.levelno >= logging.ERROR and record.name.startswith(("modelway", "mitmproxy")):
            text = f"error logged: {message}"
        if text:
            with self._lock2:
                self.found.append(f"{record.name}: {message}\n{text}")

    def take(self) -> list[str]:
        with self._lock2:
            found, self.found = self.found, []
        return found


@dataclass
class Fuzzed:
    gateway: RunningGateway
    log: TracebackLog
    upstreams: dict[str, UpstreamServer] = field(default_factory=dict)


@contextmanager
def fuzz_gateway(**gateway: Any) -> Iterator[Fuzzed]:
    """The gateway and its three upstreams; the traceback log attached to the root logger."""
    behaviors = {"oa": openai_upstream(), "an": anthropic_upstream(), "ge": gemini_upstream()}
    log = TracebackLog()
    with ExitStack() as stack:
        servers = {k: stack.enter_context(UpstreamServer(b)) for k, b in behaviors.items()}
        urls = {k: f"http://127.0.0.1:{s.port}" for k, s in servers.items()}
        logging.getLogger().addHandler(log)
        stack.callback(logging.getLogger().removeHandler, log)
        running = stack.enter_context(run_gateway(config(urls, **gateway)))
        yield Fuzzed(running, log, servers)


# ----------------------------------------------------------------------------- requests


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: bytes,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes | None,
    *,
    chunked: bool = False,
) -> bytes:
    """One HTTP/1.1 request as bytes; `Content-Length` added unless given or chunked."""
    names = {name.lower() for name, _ in headers}
    lines = [b"%s %s HTTP/1.1" % (method, path), b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None and chunked and b"transfer-encoding" not in names:
        lines.append(b"Transfer-Encoding: chunked")
        body = chunk(body)
    elif body is not None and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def chunk(body: bytes, size: int = 700) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)] if body else []
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


class NoAnswer(AssertionError):
    """The gateway closed the connection or did not answer in time."""


def send(port: int, data: bytes, timeout: float = TIMEOUT) -> Answer:
    """`data` written to a fresh connection as it is; the whole answer read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the gateway answered early and closed: read it
            sock.sendall(data)
        method = data.split(b" ", 1)[0].decode("latin-1")
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise NoAnswer(f"no answer: {type(exc).__name__}: {exc}") from None
        finally:
            response.close()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, headers, body)


def auth_headers(api: str) -> list[tuple[bytes, bytes]]:
    key = CLIENT_KEY.encode()
    if api == "anthropic":
        return [(b"x-api-key", key), (b"anthropic-version", b"2023-06-01")]
    if api == "gemini":
        return [(b"x-goog-api-key", key)]
    return [(b"Authorization", b"Bearer " + key)]


def post(port: int, api: str, path: str, body: bytes, **options: Any) -> Answer:
    headers = [(b"Content-Type", b"application/json"), *auth_headers(api)]
    return send(port, request_bytes(b"POST", path.encode(), headers, body, **options))


# ----------------------------------------------------------------------------- checks


def api_of(path: bytes | str, request: bytes = b"") -> str:
    """Whose error shape an answer on `path` must have; with the raw `request`, also the
    APIs that recognize its headers as their client's (their shape is allowed too)."""
    text = path.decode("latin-1") if isinstance(path, bytes) else path
    text = text.split("?")[0]
    if text in ("/v1/messages", "/v1/messages/count_tokens"):
        return "anthropic"
    if text.startswith(("/v1beta/", "/v1alpha/", "/upload/")):
        return "gemini"
    if text.startswith("/v1/models/") and ":" in text:  # Gemini's method, or OpenAI's model id
        return "gemini|openai"
    if text.startswith(("/v1/messages/", "/v1/complete")):
        return "anthropic"
    head = request.split(b"\r\n\r\n", 1)[0].lower()
    own = [api for api, names in _CLIENT_HEADERS.items() if any(n in head for n in names)]
    return "|".join(["openai", *own])


_CLIENT_HEADERS = {
    "anthropic": (b"\r\nanthropic-version:", b"\r\nx-api-key:"),
    "gemini": (b"\r\nx-goog-api-key:",),
}
"""Headers by which an API recognizes its client (`IngressAPI.recognizes`)."""


def error_shape_problem(api: str, body: bytes) -> str | None:
    """Why `body` is not an error in `api`'s shape (or, for "a|b", in either), or None."""
    if "|" in api:
        found = [error_shape_problem(one, body) for one in api.split("|")]
        return None if None in found else found[0]
    try:
        data = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return f"no error object: {body[:200]!r}"
    error = data["error"]
    if api == "anthropic":
        ok = data.get("type") == "error" and isinstance(error.get("type"), str)
        ok = ok and isinstance(error.get("message"), str)
    elif api == "gemini":
        ok = isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
        ok = ok and isinstance(error.get("status"), str)
    else:
        ok = isinstance(error.get("message"), str) and "type" in error
    return None if ok else f"not a {api} error: {body[:300]!r}"


def problems(fuzzed: Fuzzed, api: str, answer: Answer) -> list[str]:
    """What is wrong with one answer (empty: nothing); takes the tracebacks logged since."""
    found = [f"traceback logged:\n{t}" for t in fuzzed.log.take()]
    if answer.status >= 500:
        found.append(f"{answer.status}: {answer.body[:500]!r}")
    elif answer.status >= 400 and answer.body:
        shape = error_shape_problem(api, answer.body)
        if shape:
            found.append(f"{answer.status} {shape}")
    if b"Traceback (most recent call last)" in answer.body:
        found.append(f"traceback in the answer: {answer.body[:500]!r}")
    return found


def check(fuzzed: Fuzzed, api: str, answer: Answer) -> None:
    found = problems(fuzzed, api, answer)
    assert not found, "\n".join(found)
