"""Client connection limits: header, body and idle timeouts, and a maximum of connections.

mitmproxy reads client connections without limits of its own (its inactivity timeout is ten
minutes, and any byte resets it, so a client trickling a header a byte at a time holds a
connection for ever). The guard follows each client connection through the addon's hooks
(connected, request headers, request, answer done, disconnected) and the engine's watcher
sweeps it a few times a second:

- waiting for a request: the headers must be complete within `header_timeout` of the
  connection (its first request) or `idle_timeout` of the previous answer (a keep-alive
  connection);
- reading a body: it must be complete within `body_timeout` of the headers;
- while the gateway works on the request or sends its answer, no client limit applies (the
  upstream timeouts do).

A connection past its limit gets a 408 (after a complete answer: nothing) and is closed.
Beyond `max_connections` a new connection is answered 503 and closed at once.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import connection

from modelway.config import ClientLimits
from modelway.protocolerrors import json_error_response

logger = logging.getLogger("modelway")

WAITING, BODY, BUSY = "waiting", "body", "busy"


@dataclass(slots=True)
class _Tracked:
    client: connection.Client
    phase: str
    since: float
    answered: bool = False
    """Whether an answer was sent on this connection (then a timeout closes it silently)."""
    open: int = 0
    """Requests whose headers were read and whose answer is not done (HTTP/2: several)."""


class ClientGuard:
    """The client connections of one gateway process and their limits."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self._proxyserver: Callable[[], Any] = lambda: None
        """mitmproxy's proxyserver addon (weakly: it holds the listening sockets), whose
        connection handlers close a connection."""
        self._clients: dict[str, _Tracked] = {}

    def attach(self, proxyserver: Any) -> None:
        self._proxyserver = weakref.ref(proxyserver) if proxyserver is not None else lambda: None

    def __len__(self) -> int:
        return len(self._clients)

    # ---------------------------------------------------------------- the addon's hooks

    def connected(self, client: connection.Client) -> None:
        if len(self._clients) >= self.limits.max_connections:
            logger.warning(
                "refused a client connection: %d open (gateway.clients.max_connections)",
                len(self._clients),
            )
            self._close(client, 503, "the gateway has too many open connections; retry later")
            client.error = "too many connections"
            return
        self._clients[client.id] = _Tracked(client, WAITING, time.monotonic())

    def disconnected(self, client: connection.Client) -> None:
        self._clients.pop(client.id, None)

    def headers_read(self, client: connection.Client) -> None:
        tracked = self._clients.get(client.id)
        if tracked is not None:
            tracked.open += 1
            self._move(tracked, BODY if tracked.open == 1 else BUSY)

    def request_read(self, client: connection.Client) -> None:
        tracked = self._clients.get(client.id)
        if tracked is not None:
            self._move(tracked, BUSY)

    def answered(self, client: connection.Client) -> None:
        tracked = self._clients.get(client.id)
        if tracked is None:
            return
        tracked.open = max(tracked.open - 1, 0)
        if tracked.open == 0:  # the connection waits for the next request
            tracked.answered = True
            self._move(tracked, WAITING)

    # ---------------------------------------------------------------- the sweep

    def sweep(self, now: float | None = None) -> None:
        """Close every connection past its limit."""
        now = time.monotonic() if now is None else now
        for tracked in list(self._clients.values()):
            limit = self._limit(tracked)
            if limit is None or now - tracked.since <= limit:
                continue
            if tracked.phase == WAITING and tracked.answered and self._sending(tracked.client):
                tracked.since = now  # the answer is still being written to a slow reader
                continue
            self._clients.pop(tracked.client.id, None)
            if tracked.answered and tracked.phase == WAITING:
                self._close(tracked.client, None, "")
            else:
                what = "headers" if tracked.phase == WAITING else "body"
                self._close(tracked.client, 408, f"the request {what} did not arrive in time")

    def _limit(self, tracked: _Tracked) -> float | None:
        if tracked.phase == BODY:
            return self.limits.body_timeout
        if tracked.phase == WAITING:
            return self.limits.idle_timeout if tracked.answered else self.limits.header_timeout
        return None

    @staticmethod
    def _move(tracked: _Tracked, phase: str) -> None:
        tracked.phase, tracked.since = phase, time.monotonic()

    def _writer(self, client: connection.Client) -> Any:
        proxyserver = self._proxyserver()
        handler = proxyserver.connections.get(client.id) if proxyserver is not None else None
        io = handler.transports.get(handler.client) if handler is not None else None
        return getattr(io, "writer", None)

    def _sending(self, client: connection.Client) -> bool:
        writer = self._writer(client)
        transport = getattr(writer, "transport", None)
        return bool(transport is not None and transport.get_write_buffer_size())

    def _close(self, client: connection.Client, status: int | None, message: str) -> None:
        """Write an error answer (if any) and close the client's socket: mitmproxy's handler
        then ends by itself, as for a client that hung up."""
        writer = self._writer(client)
        if writer is None:
            return
        if status is not None:
            writer.write(json_error_response(status, message))
        writer.close()
