"""Real HTTP upstream servers on 127.0.0.1 that speak OpenAI's wire format, for tests.

Each server records what it received and answers through a `behavior` the test can swap:
normal answers, slow streams, errors, garbage bytes, dropped connections.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer: a whole body, or SSE `chunks` written `delay` seconds apart.

    `raw` bytes are written to the socket as they are (for protocol garbage).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    chunks: list[bytes] | None = None
    delay: float = 0.0
    raw: bytes | None = None
    drop_after: int | None = None


Behavior = Callable[[Received], Reply]


def chat_reply_text(request: dict[str, Any]) -> str:
    last = request["messages"][-1].get("content")
    return f"echo: {last}" if isinstance(last, str) else "echo"


def openai_completion(request: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    text = chat_reply_text(request) if text is None else text
    return {
        "id": "chatcmpl-upstream",
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
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": len(text.split()),
            "total_tokens": 7 + len(text.split()),
        },
    }


def openai_stream_chunks(request: dict[str, Any], pieces: list[str] | None = None) -> list[bytes]:
    pieces = pieces if pieces is not None else chat_reply_text(request).split(" ")
    usage_on = (request.get("stream_options") or {}).get("include_usage") is True
    base = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": request["model"],
    }
    extra = {"usage": None} if usage_on else {}
    out = []
    for index, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": " " + piece}
        out.append(
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}], **extra}
        )
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], **extra})
    if usage_on:
        out.append(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": len(pieces),
                    "total_tokens": 7 + len(pieces),
                },
            }
        )
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in out] + [b"data: [DONE]\n\n"]


def openai_behavior(received: Received) -> Reply:
    """A well-behaved OpenAI server: chat (streamed or not) and embeddings."""
    if received.path.endswith("/embeddings"):
        request = received.json
        inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
            for i, _ in enumerate(inputs)
        ]
        body = {
            "object": "list",
            "data": data,
            "model": request["model"],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
        return Reply(body=json.dumps(body).encode())
    request = received.json
    if request.get("stream"):
        return Reply(
            headers={"content-type": "text/event-stream"}, chunks=openai_stream_chunks(request)
        )
    return Reply(body=json.dumps(openai_completion(request)).encode())


class UpstreamServer:
    """A threaded HTTP/1.1 server; use as a context manager. `url` is its base URL."""

    def __init__(self, behavior: Behavior = openai_behavior) -> None:
        self.behavior = behavior
        self.received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> UpstreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def last(self) -> Received:
        return self.received[-1]


def _handler_class(owner: UpstreamServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            received = Received(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            owner.received.append(received)
            reply = owner.behavior(received)
            if reply.raw is not None:
                self.wfile.write(reply.raw)
                self.wfile.flush()
                self.close_connection = True
                return
            if reply.chunks is not None:
                self._stream(reply)
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def _stream(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            for index, chunk in enumerate(reply.chunks or []):
                if reply.drop_after is not None and index >= reply.drop_after:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if index and reply.delay:
                    time.sleep(reply.delay)
                self.wfile.write(chunk)
                self.wfile.flush()

    return Handler


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
