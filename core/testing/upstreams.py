"""Recording fake upstream HTTP servers on 127.0.0.1, port 0, for tests.

An `UpstreamServer` records every request it receives (`received`, `last`, `wait_for`) and
answers through a `behavior`, a function from the `Received` request to a `Reply`, that the
test may swap at any time. A Reply scripts the faults a backend can show: any status code,
a stall before the first byte, delays between streamed chunks, a connection dropped
mid-stream, or raw garbage on the socket. Streamed chunks may come from a generator, so a
test can release them one at a time.

The wire formats live beside this module, as behaviors: `fake_openai.OpenAIChat`,
`fake_anthropic.AnthropicMessages`, `fake_gemini.gemini_behavior`. A server stops at once:
no polling accept loop, open connections are shut, and waits inside replies end.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import ssl
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

from modelway.testing.wait import DEFAULT_TIMEOUT, bound_socket, port_of


@dataclass
class Received:
    """One request as the upstream saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def _json_headers() -> dict[str, str]:
    return {"content-type": "application/json"}


@dataclass
class Reply:
    """What to answer.

    A whole `body`, or `chunks` (an iterable: a list, or a generator the test controls)
    written as they come, `delay` seconds apart, on a connection that closes at the end.
    `stall` waits before anything is sent (a slow first byte); `drop_after` closes the
    connection after that many chunks; `raw` bytes are written as they are, then the
    connection closes (protocol garbage).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=_json_headers)
    chunks: Iterable[bytes] | None = None
    delay: float = 0.0
    raw: bytes | None = None
    drop_after: int | None = None
    stall: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """A JSON answer."""
        return cls(status, json.dumps(data).encode(), {**_json_headers(), **(headers or {})})

    @classmethod
    def sse(
        cls,
        chunks: Iterable[bytes],
        *,
        delay: float = 0.0,
        drop_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """A streamed `text/event-stream` answer."""
        sse_headers = {"content-type": "text/event-stream", **(headers or {})}
        return cls(headers=sse_headers, chunks=chunks, delay=delay, drop_after=drop_after)


Behavior = Callable[[Received], Reply]


def status_reply(
    status: int, message: str | None = None, headers: dict[str, str] | None = None
) -> Behavior:
    """A behavior that always answers `status` with an OpenAI-shaped error body."""
    text = message or f"status {status}"
    error = {"error": {"message": text, "type": "server_error", "code": None}}
    return lambda _received: Reply.json(error, status, headers)


class Gate:
    """A point where a reply waits for the test (made by `UpstreamServer.gate()`).

    A behavior, or a generator of stream chunks, calls `wait()`; it returns True once the
    test called `open()` (each `open` lets one wait pass; `open(all=True)` every one), and
    False when the server stops first or after `timeout` seconds (then the server reports
    a failure), so a forgotten gate never hangs a test.
    """

    def __init__(self, owner: UpstreamServer, timeout: float) -> None:
        self._owner = owner
        self._timeout = timeout
        self._passes = threading.Semaphore(0)
        self._all = False

    def open(self, count: int = 1, *, all: bool = False) -> None:
        self._all = self._all or all
        self._passes.release(1 if all else count)

    def wait(self) -> bool:
        if not self._all and not self._passes.acquire(timeout=self._timeout):
            self._owner.errors.append(f"a gate was not opened within {self._timeout:g}s")
            return False
        if self._all:
            self._passes.release()  # pass it on to the next waiter
        return not self._owner.stopping.is_set()


class UpstreamServer:
    """A threaded HTTP/1.1 server on `host`, port 0; a context manager.

    `url` is the OpenAI-style base URL (`.../v1`), `origin` the scheme, host and port.
    With `tls` (a server-side SSLContext) it speaks HTTPS.
    """

    def __init__(
        self,
        behavior: Behavior | None = None,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if behavior is None:
            from modelway.testing.fake_openai import openai_behavior

            behavior = openai_behavior
        self.behavior = behavior
        self.host = host
        self.tls = tls
        self.received: list[Received] = []
        self.errors: list[str] = []
        """Tracebacks of behaviors that raised (answered 500); stopping reports them."""
        self.stopping = threading.Event()
        self._changed = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._listener = bound_socket(host)
        self._listener.setblocking(False)
        self._port = port_of(self._listener)
        """Bound (and listening) from here on, so the URL is known before the server starts;
        connections wait in the backlog until it does."""
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._gates: list[Gate] = []

    # ------------------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    # ------------------------------------------------------------------------- recording

    @property
    def last(self) -> Received:
        with self._changed:
            assert self.received, "the upstream has received no request"
            return self.received[-1]

    def wait_for(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[Received]:
        """Wait until at least `count` requests arrived; returns them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(
                    f"upstream {self.origin} received {len(self.received)} request(s) in "
                    f"{timeout:g}s, expected {count}"
                )
            return list(self.received)

    def gate(self, timeout: float = 60.0) -> Gate:
        """A new `Gate` for a reply to wait at; stopping the server opens it."""
        gate = Gate(self, timeout)
        self._gates.append(gate)
        return gate

    def sleep(self, seconds: float) -> bool:
        """Wait `seconds` unless the server stops first; True if the full time passed."""
        return not self.stopping.wait(seconds)

    # ------------------------------------------------------------------------- lifecycle

    def start(self) -> UpstreamServer:
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"upstream-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: no new connections, open ones shut, waits in replies cut short."""
        if self._stopped:
            return
        self._stopped = True
        self.stopping.set()
        for gate in self._gates:
            gate.open(all=True)
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(10)
        with self._changed:
            open_connections = list(self._connections)
        for conn in open_connections:
            _shut(conn)
        self._listener.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if self.errors and exc_type is None:
            raise AssertionError(f"upstream behavior failed:\n{self.errors[0]}")

    # ------------------------------------------------------------------------- serving

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.stopping.is_set():
                selector.select()
                if self.stopping.is_set():
                    return
                try:
                    conn, address = self._listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                conn.setblocking(True)
                # Stream chunks go out as written (no Nagle wait for the previous one's ACK).
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self._changed:
                    self._connections.add(conn)
                threading.Thread(
                    target=self._serve_connection, args=(conn, address), daemon=True
                ).start()

    def _serve_connection(self, conn: socket.socket, address: Any) -> None:
        stream = conn
        try:
            if self.tls is not None:
                stream = self.tls.wrap_socket(conn, server_side=True)
            _Handler(stream, address, cast(Any, self))
        except (OSError, ssl.SSLError):
            pass  # the client went away, or the server stopped under it
        finally:
            with self._changed:
                self._connections.discard(conn)
            stream.close()

    def _record(self, received: Received) -> None:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    def _answer(self, received: Received) -> Reply:
        try:
            return self.behavior(received)
        except Exception:
            text = traceback.format_exc()
            self.errors.append(text)
            return Reply(status=500, body=text.encode(), headers={"content-type": "text/plain"})


def _shut(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        owner: UpstreamServer = self.server
        length = int(self.headers.get("content-length") or 0)
        received = Received(
            self.command,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length),
        )
        owner._record(received)
        reply = owner._answer(received)
        if reply.stall and not owner.sleep(reply.stall):
            self.close_connection = True
            return
        if reply.raw is not None:
            self.wfile.write(reply.raw)
            self.wfile.flush()
            self.close_connection = True
        elif reply.chunks is not None:
            self._stream(owner, reply)
        else:
            self._head(reply, {"content-length": str(len(reply.body))})
            self.wfile.write(reply.body)

    def _head(self, reply: Reply, extra: dict[str, str]) -> None:
        self.send_response(reply.status)
        for name, value in {**reply.headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _stream(self, owner: UpstreamServer, reply: Reply) -> None:
        self._head(reply, {"connection": "close"})
        self.close_connection = True
        for index, chunk in enumerate(reply.chunks or ()):
            if reply.drop_after is not None and index >= reply.drop_after:
                _shut(self.connection)
                return
            if index and reply.delay and not owner.sleep(reply.delay):
                return
            self.wfile.write(chunk)
            self.wfile.flush()
