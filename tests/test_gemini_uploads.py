"""Gemini's resumable uploads through a real gateway: google-genai's `client.files.upload()`
against a recording Gemini upstream that speaks the resumable protocol.

The start request goes to the backend with the gateway's key; the upload URL the client gets
is on the gateway, with the backend's path and upload id; the bytes and the finalize go to the
backend's real upload URL. An upload URL on another host never reaches the client, and the
gateway never sends anything there. (No gateway keys here: uploads through a gateway that
requires keys, whose upload URLs carry a signed token, are tests/test_gemini_upload_keys.py.)
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from google import genai
from google.genai import types

from modelway.context import ClientInfo, RequestContext
from modelway.plugins.providers.gemini.uploads import gateway_url
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

GATEWAY_KEY = "AIza-gateway-uploads"
CLIENT_KEY = "AIza-client-uploads"
UPLOAD_ID = "AbCd-opaque_upload.id"
ELSEWHERE = "http://elsewhere.invalid:9/upload/v1beta/files?upload_id=stolen"


class Resumable:
    """Google's resumable upload protocol: start, then upload chunks, the last one finalized."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.redirect: str | None = None

    def __call__(self, received: Received) -> Reply:
        command = received.headers.get("x-goog-upload-command", "")
        if command == "start":
            return self._start(received)
        query = parse_qs(urlsplit(received.path).query)
        if query.get("upload_id") != [UPLOAD_ID]:
            return Reply.json({"error": {"code": 404, "message": "no upload",
                                         "status": "NOT_FOUND"}}, 404)
        if int(received.headers["x-goog-upload-offset"]) != len(self.data):
            return Reply.json({"error": {"code": 400, "message": "offset",
                                         "status": "INVALID_ARGUMENT"}}, 400)
        self.data += received.body
        if "finalize" not in command:
            return Reply(body=b"", headers={"x-goog-upload-status": "active"})
        file = {"name": "files/abc123", "mimeType": "text/plain",
                "sizeBytes": str(len(self.data)), "state": "ACTIVE"}
        return Reply.json({"file": file}, headers={"x-goog-upload-status": "final"})

    def _start(self, received: Received) -> Reply:
        assert received.path in ("/upload/v1beta/files", "/upload/v1/files")  # SDK's version
        url = self.redirect or (f"http://{received.headers['host']}{received.path}"
                                f"?upload_id={UPLOAD_ID}&upload_protocol=resumable")
        headers = {"x-goog-upload-status": "active", "x-goog-upload-url": url,
                   "x-goog-upload-chunk-granularity": "8388608",
                   "content-type": "text/plain; charset=utf-8"}
        return Reply(body=b"", headers=headers)


@pytest.fixture(scope="module")
def resumable() -> Resumable:
    return Resumable()


@pytest.fixture(scope="module")
def upstream(resumable: Resumable) -> Iterator[UpstreamServer]:
    with UpstreamServer(resumable) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "plugins": ["gemini", "gemini_api"],
        "backends": {"g": {"provider": "gemini", "base_url": upstream.origin,
                           "api_key": GATEWAY_KEY}},
        "routes": [{"match": {"path": "/upload/*"}, "backend": "g"}],
    }
    with run_gateway(config, directory=tmp_path_factory.mktemp("uploads")) as gw:
        yield gw


@pytest.fixture
def sent(upstream: UpstreamServer, resumable: Resumable) -> list[Received]:
    upstream.received.clear()
    resumable.data.clear()
    resumable.redirect = None
    return upstream.received


def sdk(gw: RunningGateway) -> genai.Client:
    options = types.HttpOptions(base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1))
    return gw.resource("genai", lambda: genai.Client(api_key=CLIENT_KEY, http_options=options))


CONTENT = b"hello, resumable world\n" * 50


def test_files_upload_goes_through_the_gateway_to_the_backends_upload_url(
    gateway, sent, resumable
):
    config = types.UploadFileConfig(mime_type="text/plain", display_name="notes")
    uploaded = sdk(gateway).files.upload(file=io.BytesIO(CONTENT), config=config)
    assert (uploaded.name, uploaded.size_bytes) == ("files/abc123", len(CONTENT))
    assert bytes(resumable.data) == CONTENT
    start, finish = sent
    assert start.headers["x-goog-api-key"] == GATEWAY_KEY
    assert start.headers["x-goog-upload-protocol"] == "resumable"
    assert start.headers["x-goog-upload-header-content-length"] == str(len(CONTENT))
    file = json.loads(start.body)["file"]  # (the SDKs write either spelling)
    assert file.get("displayName", file.get("display_name")) == "notes"
    assert finish.path == f"{start.path}?upload_id={UPLOAD_ID}&upload_protocol=resumable"
    assert finish.headers["x-goog-api-key"] == GATEWAY_KEY
    assert finish.headers["x-goog-upload-command"] == "upload, finalize"


def start(gw: RunningGateway, **headers: str) -> Any:
    return gw.http("POST", "/upload/v1beta/files", {"file": {"displayName": "x"}}, headers={
        "x-goog-api-key": CLIENT_KEY, "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start", "x-goog-upload-header-content-length": "6", **headers})


def test_the_upload_url_is_on_the_gateway_and_takes_chunks(gateway, sent, resumable):
    answer = start(gateway)
    assert answer.status == 200 and answer.headers["x-goog-upload-status"] == "active"
    url = urlsplit(answer.headers["x-goog-upload-url"])
    assert (url.scheme, url.netloc) == ("http", f"{gateway.host}:{gateway.port}")
    assert parse_qs(url.query)["upload_id"] == [UPLOAD_ID]
    path = f"{url.path}?{url.query}"
    for offset, (chunk, command) in enumerate([(b"abc", "upload"), (b"def", "upload, finalize")]):
        step = gateway.http("POST", path, chunk, headers={
            "x-goog-api-key": CLIENT_KEY, "x-goog-upload-command": command,
            "x-goog-upload-offset": str(3 * offset), "content-type": "application/octet-stream"})
        assert step.status == 200
    assert step.headers["x-goog-upload-status"] == "final"
    assert bytes(resumable.data) == b"abcdef"
    assert step.json["file"]["sizeBytes"] == "6"


def test_a_proxy_in_front_with_tls_gets_an_https_upload_url(gateway, sent):
    answer = start(gateway, **{"x-forwarded-proto": "https", "host": "llm.example.com"})
    assert answer.headers["x-goog-upload-url"].startswith(
        "https://llm.example.com/upload/v1beta/files?upload_id=")


def test_an_upload_url_on_another_host_never_reaches_the_client(gateway, sent, resumable):
    resumable.redirect = ELSEWHERE
    answer = start(gateway)
    assert answer.status == 200 and "x-goog-upload-url" not in answer.headers
    with pytest.raises(KeyError, match="Upload URL"):
        sdk(gateway).files.upload(file=io.BytesIO(b"secret"),
                                  config=types.UploadFileConfig(mime_type="text/plain"))
    assert len(sent) == 2 and resumable.data == bytearray()


def context(host: str, **headers: str) -> RequestContext:
    return RequestContext("id", "POST", "/upload/v1beta/files", host,
                          {"host": host, **headers}, ClientInfo("127.0.0.1", "anonymous"))


@pytest.mark.parametrize(
    ("url", "base", "rewritten"),
    [
        ("https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=a",
         "https://generativelanguage.googleapis.com",
         "http://gw:8080/upload/v1beta/files?upload_id=a"),
        ("http://up:1/prefix/upload/v1beta/files?upload_id=a", "http://up:1/prefix",
         "http://gw:8080/upload/v1beta/files?upload_id=a"),
        ("http://up:1/upload/v1beta/files?upload_id=a", "http://up:2", None),
        ("https://up:1/upload/v1beta/files?upload_id=a", "http://up:1", None),
        ("http://up:1/v1beta/files?upload_id=a", "http://up:1", None),
        ("http://up:1/upload/../v1beta/models", "http://up:1", None),
        ("http://up:1/other/upload/x", "http://up:1/prefix", None),
    ],
)
def test_only_the_backends_own_upload_urls_are_rewritten(url, base, rewritten):
    assert gateway_url(context("gw:8080"), url, base) == rewritten


def test_forward_mode_keeps_https_on_the_intercepted_host():
    host = "generativelanguage.googleapis.com"
    url = f"https://{host}/upload/v1beta/files?upload_id=a"
    assert gateway_url(context(host), url, f"https://{host}") == url
