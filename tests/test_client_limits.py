"""Client connection limits through a real gateway (issue 13, item 8).

Slow headers, a slow body and an idle keep-alive connection are closed after their limits
(`gateway.clients`), a request head over `max_header_bytes` is a 431, connections beyond
`max_connections` are answered 503 at once and a place frees when one closes. Limits are
fractions of a second against clients that would wait for a minute; nothing measures speed.
Under overload the gateway's log is rate-limited: a flood of one message becomes a few lines
and a count.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from modelway.logflood import FloodFilter
from modelway.testing.gateway import RunningGateway, run_gateway

WAIT = 30.0


def config(**clients: Any) -> dict[str, Any]:
    return {
        "gateway": {"clients": clients},
        "backends": {"m": {"provider": "mock"}},
        "routes": [{"backend": "m"}],
    }


@contextmanager
def connection(gw: RunningGateway) -> Iterator[socket.socket]:
    with socket.create_connection((gw.host, gw.port), timeout=WAIT) as sock:
        yield sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slow_headers_are_a_408_and_closed():
    with run_gateway(config(header_timeout=0.5)) as gw, connection(gw) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer


def test_a_slow_body_is_a_408_and_closed():
    with run_gateway(config(body_timeout=0.5)) as gw, connection(gw) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json"
            b'\r\nContent-Length: 1000\r\n\r\n{"model":'
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")


def test_an_idle_keep_alive_connection_is_closed():
    with run_gateway(config(idle_timeout=0.5)) as gw, connection(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.count(b"HTTP/1.1") == 1  # the answer, then the close, nothing else


def test_headers_over_the_limit_are_a_431():
    with run_gateway(config(max_header_bytes=4096)) as gw, connection(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431")
    assert b"headers_too_large" in answer


def test_headers_within_the_limit_pass():
    with run_gateway(config(max_header_bytes=4096)) as gw:
        answer = gw.http("GET", "/healthz", headers={"x-pad": "a" * 3000})
    assert answer.status == 200


def test_connections_beyond_the_maximum_are_refused_clearly():
    with run_gateway(config(max_connections=3)) as gw, ExitStack() as stack:
        held = [stack.enter_context(connection(gw)) for _ in range(3)]
        for sock in held:  # each is open and served
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with connection(gw) as extra:
            refused = read_until_closed(extra)
        held.pop().close()
        after = gw.call(_healthz_when_free(gw))
    assert refused.startswith(b"HTTP/1.1 503")
    assert b"too many open connections" in refused
    assert after == 200


async def _healthz_when_free(gw: RunningGateway) -> int:
    """Wait (on the gateway's loop) until a place is free, then ask /healthz."""
    import asyncio

    engine = gw.server.engine
    for _ in range(int(WAIT * 100)):
        if len(engine.clients) < 3:
            break
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    status = int((await reader.readline()).split()[1])
    writer.close()
    await writer.wait_closed()
    return status


def test_a_flood_of_one_log_message_is_rate_limited():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("modelway.test.flood")
    logger.propagate = False
    handler = Keep()
    logger.addHandler(handler)
    now = [0.0]
    flood = FloodFilter(interval=10.0, burst=3, clock=lambda: now[0])
    logger.addFilter(flood)
    try:
        for _ in range(10_000):
            logger.error("socket.accept() out of system resource")
        now[0] = 11.0
        logger.error("socket.accept() out of system resource")
    finally:
        logger.removeFilter(flood)
        logger.removeHandler(handler)
    assert len(records) == 4
    assert "9997 more like it" in records[-1].getMessage()


def test_refusals_under_overload_are_logged_a_few_times_then_counted(caplog):
    caplog.set_level(logging.WARNING, logger="modelway")
    with run_gateway(config(max_connections=1)) as gw, connection(gw) as held:
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert held.recv(65536).startswith(b"HTTP/1.1 200")
        for _ in range(40):
            with connection(gw) as extra:
                assert read_until_closed(extra).startswith(b"HTTP/1.1 503")
    refusals = [r for r in caplog.records if "refused a client connection" in r.getMessage()]
    assert 1 <= len(refusals) <= 5
