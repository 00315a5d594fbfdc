"""The idle limit of a streamed upstream body (`modelway.upstream`'s watch in place of
aiohttp's per-read timer), through the gateway's own transport against a real HTTP upstream:
silence while the body is waited for ends it as a timeout; time the reader spends holding a
chunk (a slow client) is not silence; a body that keeps coming outlives the limit."""

from __future__ import annotations

import asyncio
import time

from modelway.canonical import UpstreamRequest
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from modelway.upstream import HttpTransport, UpstreamFailure

IDLE = 0.5
LONG = 60.0
"""How long the silent upstream would stay silent (it stops at once when the test ends)."""


def events(count: int) -> list[bytes]:
    return [b"data: %d\n\n" % n for n in range(count)]


def held_open(received: Received) -> Reply:
    """One event, then a silence far past the limit."""
    return Reply.sse([*events(1), b"data: late\n\n"], delay=LONG)


def read_all(url: str, hold: float = 0.0) -> tuple[list[bytes], BaseException | None]:
    async def go() -> tuple[list[bytes], BaseException | None]:
        transport = HttpTransport(connect_timeout=5, read_timeout=60)
        got: list[bytes] = []
        try:
            answer = await transport.send(
                UpstreamRequest("POST", url, {"content-type": "application/json"}, b"{}",
                                timeout=IDLE), stream=True)  # fmt: skip
            try:
                async for chunk in answer.iter_chunks():
                    got.append(chunk)
                    if hold and len(got) == 1:
                        await asyncio.sleep(hold)  # the reader holds the first chunk
            finally:
                answer.release()
        except UpstreamFailure as exc:
            return got, exc
        finally:
            await transport.close()
        return got, None

    return asyncio.run(go())


def test_silence_while_the_body_is_waited_for_is_a_timeout():
    with UpstreamServer(held_open) as server:
        started = time.monotonic()
        got, error = read_all(server.url + "/v1/chat/completions")
    assert isinstance(error, UpstreamFailure) and error.status == 504
    assert b"".join(got) == b"".join(events(1))
    assert time.monotonic() - started < 20  # the limit ended it, not the upstream


def test_a_chunk_held_by_the_reader_is_not_silence():
    with UpstreamServer(lambda _: Reply.sse(events(50))) as server:
        got, error = read_all(server.url + "/v1/chat/completions", hold=IDLE * 3)
    assert error is None
    assert b"".join(got) == b"".join(events(50))


def test_a_body_that_keeps_coming_outlives_the_limit():
    with UpstreamServer(lambda _: Reply.sse(events(8), delay=IDLE / 5)) as server:
        got, error = read_all(server.url + "/v1/chat/completions")
    assert error is None
    assert b"".join(got) == b"".join(events(8))
