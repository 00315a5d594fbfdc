"""The relay's wire: the head leaves with the first piece when that is ready at once, on its
own when the body has nothing yet, and every piece is written as soon as it exists."""

from __future__ import annotations

import asyncio
import http.client
import json

import pytest

from modelway.relay import RelayServer
from modelway.replies import Reply, StreamReply, Write


class Body:
    """A body that writes `first`, waits for `go`, then writes `rest`."""

    def __init__(self, first: bytes, rest: bytes, wait_first: bool = False) -> None:
        self.first, self.rest = first, rest
        self.go = asyncio.Event()
        self.wait_first = wait_first
        self.cancelled = False

    async def run(self, write: Write) -> None:
        if self.wait_first:
            await self.go.wait()
        await write(self.first)
        await self.go.wait()
        await write(self.rest)

    def cancel(self) -> None:
        self.cancelled = True


async def _until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(marker), 5)


async def _exchange(wait_first: bool) -> tuple[bytes, bytes, bytes]:
    relay = RelayServer()
    await relay.start()
    body = Body(b"data: 1\n\n", b"data: 2\n\n", wait_first)
    path = relay.register(StreamReply(200, {"content-type": "text/event-stream"}, body))
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nhost: relay\r\ncontent-length: 0\r\n\r\n".encode())
        head = await _until(reader, b"\r\n\r\n")
        if wait_first:  # the head came before any piece existed (else this would time out)
            body.go.set()
        first = await _until(reader, b"\n\n\r\n")
        body.go.set()
        rest = await _until(reader, b"0\r\n\r\n")
        return head, first, rest
    finally:
        writer.close()
        await writer.wait_closed()
        await relay.stop()


def test_head_and_first_piece_leave_together():
    head, first, rest = asyncio.run(_exchange(wait_first=False))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in head
    assert first == b"9\r\ndata: 1\n\n\r\n"
    assert rest == b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"


def test_the_head_does_not_wait_for_a_slow_first_piece():
    head, first, rest = asyncio.run(_exchange(wait_first=True))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert first == b"9\r\ndata: 1\n\n\r\n"
    assert rest.endswith(b"0\r\n\r\n")


def test_an_unknown_token_is_a_404():
    async def ask() -> bytes:
        relay = RelayServer()
        await relay.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        try:
            writer.write(b"POST /nope HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
            return await _until(reader, b"\r\n\r\n")
        finally:
            writer.close()
            await writer.wait_closed()
            await relay.stop()

    assert asyncio.run(ask()).startswith(b"HTTP/1.1 404")


@pytest.mark.parametrize("wait_first", [False, True])
def test_uvloop_relays_the_same(wait_first):
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        head, first, rest = runner.run(_exchange(wait_first))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert first == b"9\r\ndata: 1\n\n\r\n"
    assert rest.endswith(b"0\r\n\r\n")


def test_streams_on_one_client_connection_share_one_relay_connection(
    modelway_gateway, openai_upstream
):
    gw = modelway_gateway(
        {
            "plugins": ["openai"],
            "backends": {"up": {"provider": "openai", "base_url": openai_upstream.url}},
            "routes": [{"match": {"model": "*"}, "backend": "up"}],
        }
    )
    messages = [{"role": "user", "content": "a"}]
    body = json.dumps({"model": "m", "stream": True, "messages": messages})
    json_type = {"content-type": "application/json"}
    client = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        for _ in range(3):
            client.request("POST", "/v1/chat/completions", body, json_type)
            answer = client.getresponse()
            assert answer.status == 200 and b"data: [DONE]" in answer.read()
    finally:
        client.close()
    assert len(openai_upstream.received) == 3
    assert gw.server.engine.relay.accepted == 1


async def _pending_exchange(answer: Reply | None) -> tuple[bytes, bool]:
    """A request pointed at the relay before its answer exists; `answer` None: the client of
    the relay leaves while it waits (the work must be cancelled)."""
    relay = RelayServer()
    await relay.start()
    work: asyncio.Future[Reply | StreamReply] = asyncio.get_running_loop().create_future()
    path = relay.register(work)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nhost: relay\r\ncontent-length: 0\r\n\r\n".encode())
        await asyncio.sleep(0.05)  # the relay has read the request and waits for the work
        if answer is None:
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if work.cancelled():
                    break
                await asyncio.sleep(0.01)
            return b"", work.cancelled()
        work.set_result(answer)
        head = await _until(reader, b"\r\n\r\n")
        return head + await asyncio.wait_for(reader.readexactly(len(answer.body)), 5), False
    finally:
        writer.close()
        await relay.stop()


def test_a_pending_request_gets_a_whole_answer_with_its_status():
    error = Reply(429, {"content-type": "application/json", "retry-after": "3"}, b'{"e":1}')
    data, _ = asyncio.run(_pending_exchange(error))
    assert data.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"retry-after: 3\r\n" in data and b"content-length: 7\r\n" in data
    assert b"transfer-encoding" not in data and data.endswith(b'\r\n\r\n{"e":1}')


def test_a_pending_request_whose_connection_closes_is_cancelled():
    _, cancelled = asyncio.run(_pending_exchange(None))
    assert cancelled
