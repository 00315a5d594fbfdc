"""Pass-through uploads stream to the backend (#9): an 8 MiB `files.create` through the openai
SDK arrives byte for byte with the gateway's key; the upstream has the first part of a body
before the client sends the rest; a chunked body over `max_body_bytes` is a 413 in OpenAI's
shape and the upstream sees its request cut; a wrong key is a 401 before anything goes
upstream; the access log has the upload; google-genai's resumable upload of a large file
streams to the backend's upload URL. The upstream reads bodies as they arrive (h11).
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import h11
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import UpstreamServer
from modelway.testing.wait import wait_until
from tests.test_gemini_uploads import Resumable

GATEWAY_KEY = "sk-upload-gateway"
CLIENT_KEY = "sk-upload-client"
GEMINI_KEY = "AIza-upload-gateway"
LIMIT = 12 * 1024 * 1024
WAIT = 30.0


class Seen:
    """One request as the upstream read it."""

    def __init__(self) -> None:
        self.head: h11.Request | None = None
        self.body = bytearray()
        self.first_part = threading.Event()
        self.complete = False
        self.over = threading.Event()
        """The request ended: whole, or cut (the connection closed mid-body)."""

    @property
    def headers(self) -> dict[str, str]:
        assert self.head is not None
        return {k.decode().lower(): v.decode() for k, v in self.head.headers}


class StreamingUpstream:
    """An HTTP/1.1 upstream on 127.0.0.1 port 0 that records each body as it arrives and
    answers a file object once it is whole."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> StreamingUpstream:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        for conn in self._connections:
            conn.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        parser = h11.Connection(h11.SERVER)
        seen = Seen()
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    seen.over.set()
                    return
                parser.receive_data(data)
            elif isinstance(event, h11.Request):
                seen.head = event
                self.seen.append(seen)
            elif isinstance(event, h11.Data):
                seen.body += event.data
                seen.first_part.set()
            elif isinstance(event, h11.EndOfMessage):
                seen.complete = True
                seen.over.set()
                self._answer(conn, parser, len(seen.body))
                parser.start_next_cycle()
                seen = Seen()
            else:
                return

    @staticmethod
    def _answer(conn: socket.socket, parser: h11.Connection, size: int) -> None:
        body = json.dumps(
            {
                "id": "file-1",
                "object": "file",
                "bytes": size,
                "created_at": 1,
                "filename": "big.bin",
                "purpose": "batch",
            }
        ).encode()
        head = [("content-type", "application/json"), ("content-length", str(len(body)))]
        out = parser.send(h11.Response(status_code=200, headers=head))
        out += parser.send(h11.Data(data=body)) + parser.send(h11.EndOfMessage())
        conn.sendall(out)


@pytest.fixture(scope="module")
def upstream() -> Iterator[StreamingUpstream]:
    with StreamingUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def access_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads") / "access.log"


@pytest.fixture(scope="module")
def resumable() -> Resumable:
    return Resumable()


@pytest.fixture(scope="module")
def gemini_upstream(resumable: Resumable) -> Iterator[UpstreamServer]:
    with UpstreamServer(resumable) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    upstream: StreamingUpstream, gemini_upstream: UpstreamServer, access_log: Path
) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"max_body_bytes": LIMIT, "api_keys": [CLIENT_KEY]},
        "plugins": {
            "openai": None,
            "gemini": None,
            "gemini_api": None,
            "access_log": {"path": str(access_log)},
        },
        "backends": {
            "openai": {"provider": "openai", "base_url": upstream.url, "api_key": GATEWAY_KEY},
            "g": {"provider": "gemini", "base_url": gemini_upstream.origin, "api_key": GEMINI_KEY},
        },
        "routes": [
            {"name": "files", "match": {"path": "/v1/*"}, "backend": "openai"},
            {"name": "gemini", "match": {"path": "/upload/*"}, "backend": "g"},
        ],
    }
    with run_gateway(config) as gw:
        yield gw


def sdk(gateway: RunningGateway, key: str) -> openai.OpenAI:
    return gateway.closing(openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0))


def test_a_large_sdk_upload_reaches_the_upstream_byte_for_byte(gateway, upstream):
    upstream.seen.clear()
    content = os.urandom(8 * 1024 * 1024)
    created = sdk(gateway, CLIENT_KEY).files.create(
        file=("big.bin", content, "application/octet-stream"), purpose="batch"
    )
    [seen] = upstream.seen
    assert seen.complete and created.bytes == len(seen.body)
    boundary = seen.headers["content-type"].split("boundary=")[1].encode()
    assert seen.body.startswith(b"--" + boundary)
    assert content in seen.body
    assert seen.headers["content-length"] == str(len(seen.body))


def test_the_gateways_key_goes_upstream_not_the_clients(gateway, upstream):
    upstream.seen.clear()
    sdk(gateway, CLIENT_KEY).files.create(
        file=("big.bin", b"k" * (2 * 1024 * 1024), "application/octet-stream"), purpose="batch"
    )
    [seen] = upstream.seen
    assert seen.headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert CLIENT_KEY not in json.dumps(seen.headers)


def test_the_upstream_has_the_first_part_before_the_client_sends_the_rest(gateway, upstream):
    upstream.seen.clear()
    waited: list[bool] = []

    def parts() -> Iterator[bytes]:
        yield b"a" * 65536
        seen = wait_until(lambda: upstream.seen, what="the upstream's request")[0]
        waited.append(seen.first_part.wait(WAIT))
        yield b"b" * 65536

    with httpx.Client(timeout=WAIT) as client:
        answer = client.post(
            f"{gateway.base_url}/files",
            content=parts(),
            headers={
                "authorization": f"Bearer {CLIENT_KEY}",
                "content-type": "application/octet-stream",
            },
        )
    assert waited == [True]
    assert answer.status_code == 200
    assert bytes(upstream.seen[0].body) == b"a" * 65536 + b"b" * 65536


def test_a_chunked_upload_over_the_limit_is_a_413_and_the_upstream_call_is_cut(gateway, upstream):
    upstream.seen.clear()
    piece = b"z" * (1024 * 1024)
    head = (
        "POST /v1/files HTTP/1.1\r\n"
        f"host: 127.0.0.1:{gateway.port}\r\n"
        f"authorization: Bearer {CLIENT_KEY}\r\n"
        "content-type: application/octet-stream\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n%b\r\n" % (len(piece), piece)
    with socket.create_connection(("127.0.0.1", gateway.port)) as conn:
        # one byte past the limit, the body not ended: nothing is left unread when it answers
        conn.sendall(head + chunk * (LIMIT // len(piece)) + b"1\r\nz\r\n")
        status, body = read_answer(conn)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"
    [seen] = upstream.seen
    assert seen.over.wait(WAIT)
    assert not seen.complete and len(seen.body) <= LIMIT


def read_answer(conn: socket.socket) -> tuple[int, bytes]:
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    status, body = 0, b""
    while True:
        event = parser.next_event()
        if event is h11.NEED_DATA:
            parser.receive_data(conn.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, body


def test_a_wrong_key_is_a_401_and_nothing_goes_upstream(gateway, upstream):
    upstream.seen.clear()
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(gateway, "sk-wrong").files.create(
            file=("big.bin", b"w" * (2 * 1024 * 1024), "application/octet-stream"),
            purpose="batch",
        )
    assert raised.value.status_code == 401
    assert raised.value.body["code"] == "invalid_api_key"
    assert upstream.seen == []


def test_the_access_log_records_the_upload(gateway, upstream, access_log):
    upstream.seen.clear()
    sdk(gateway, CLIENT_KEY).files.create(
        file=("big.bin", b"l" * (2 * 1024 * 1024), "application/octet-stream"), purpose="batch"
    )

    def logged() -> list[dict[str, object]]:
        records = [json.loads(line) for line in access_log.read_text().splitlines()]
        return [r for r in records if r["path"] == "/v1/files" and r["status"] == 200]

    [record, *_] = wait_until(logged, what="the upload's access record")
    assert (record["method"], record["route"], record["backend"]) == ("POST", "files", "openai")
    assert record["attempts"] == 1


def test_a_large_gemini_upload_streams_to_the_backends_upload_url(gateway, resumable):
    gw = gateway
    content = os.urandom(3 * 1024 * 1024)
    options = types.HttpOptions(base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1))
    client = gw.closing(genai.Client(api_key=CLIENT_KEY, http_options=options))
    config = types.UploadFileConfig(mime_type="application/octet-stream")
    uploaded = client.files.upload(file=io.BytesIO(content), config=config)
    assert uploaded.size_bytes == len(content)
    assert bytes(resumable.data) == content
