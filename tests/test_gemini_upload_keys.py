"""Gemini's resumable uploads through a real gateway that requires client keys
(`gateway.api_keys`, the `keys` plugin): google-genai's `client.files.upload()` against the
recording resumable upstream of tests/test_gemini_uploads.py.

The SDK sends its key with the start only; the upload URL the gateway gives back carries a
token it signed (`modelway.followups`), which authenticates the follow-ups as the same client
(the same consumer in the access log). The client's key never reaches the backend, not even
sealed in the token; an upload URL without its token, with a token for another upload, a
forged, expired or doubled one is Google's 401, and nothing goes upstream.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from google import genai
from google.genai import errors, types

from modelway.followups import PARAM, Sealer, split_token, with_token
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, UpstreamServer
from tests.governance_kit import hashed
from tests.test_gemini_uploads import CONTENT, GATEWAY_KEY, UPLOAD_ID, Resumable

CLIENT_KEY = "AIza-client-with-keys"
SECRET = "upload-secret-for-tests"


@pytest.fixture(scope="module")
def resumable() -> Resumable:
    return Resumable()


@pytest.fixture(scope="module")
def upstream(resumable: Resumable) -> Iterator[UpstreamServer]:
    with UpstreamServer(resumable) as server:
        yield server


def config(upstream: UpstreamServer, directory: Any, keys: str) -> dict:
    plugins: dict[str, Any] = {"gemini": None, "gemini_api": None,
                               "access_log": {"path": str(directory / "access.jsonl")}}
    gateway: dict[str, Any] = {"upload_secret": SECRET}
    if keys == "keys":
        plugins["keys"] = {"keys": [{"hash": hashed(CLIENT_KEY), "consumer": "alice"}]}
    else:
        gateway["api_keys"] = [CLIENT_KEY]
    return {
        "gateway": gateway,
        "plugins": plugins,
        "backends": {"g": {"provider": "gemini", "base_url": upstream.origin,
                           "api_key": GATEWAY_KEY}},
        "routes": [{"match": {"path": "/upload/*"}, "backend": "g"}],
    }  # fmt: skip


@pytest.fixture(scope="module", params=["api_keys", "keys"])
def gateway(request, tmp_path_factory, upstream) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp(request.param)
    with run_gateway(config(upstream, directory, request.param), directory=directory) as gw:
        yield gw


@pytest.fixture
def sent(upstream: UpstreamServer, resumable: Resumable) -> list[Received]:
    upstream.received.clear()
    resumable.data.clear()
    resumable.redirect = None
    return upstream.received


def sdk(gw: RunningGateway, key: str = CLIENT_KEY) -> genai.Client:
    options = types.HttpOptions(base_url=gw.url, retry_options=types.HttpRetryOptions(attempts=1))
    return gw.resource(("genai", key), lambda: genai.Client(api_key=key, http_options=options))


def log_lines(gw: RunningGateway) -> list[dict]:
    path = gw.gateway.config.plugins["access_log"]["path"]
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]


def test_the_sdk_uploads_through_a_gateway_that_requires_keys(gateway, sent, resumable):
    config = types.UploadFileConfig(mime_type="text/plain", display_name="notes")
    uploaded = sdk(gateway).files.upload(file=io.BytesIO(CONTENT), config=config)
    assert (uploaded.name, uploaded.size_bytes) == ("files/abc123", len(CONTENT))
    assert bytes(resumable.data) == CONTENT
    start, finish = sent
    assert finish.path == f"{start.path}?upload_id={UPLOAD_ID}&upload_protocol=resumable"
    for received in sent:  # the gateway's key, never the client's, never the token
        assert received.headers["x-goog-api-key"] == GATEWAY_KEY
        assert CLIENT_KEY not in json.dumps([received.path, received.headers])
        assert PARAM not in received.path
    first, second = log_lines(gateway)[-2:]
    assert (first["status"], second["status"]) == (200, 200)
    assert first["client"] == second["client"] and first["client"].startswith("key:")
    assert first.get("consumer") == second.get("consumer")
    if "keys" in gateway.gateway.config.plugins:
        assert second["consumer"] == "alice"
    assert second["extra"]["follow_up"] == "signed"


def start(gw: RunningGateway, key: str | None = CLIENT_KEY) -> Any:
    headers = {"x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
               "x-goog-upload-header-content-length": "3"}
    if key:
        headers["x-goog-api-key"] = key
    return gw.http("POST", "/upload/v1beta/files", {"file": {"displayName": "x"}}, headers)


def upload(gw: RunningGateway, path: str) -> Any:
    return gw.http("POST", path, b"abc", headers={
        "x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0",
        "content-type": "application/octet-stream"})


def upload_url(gw: RunningGateway) -> tuple[str, str]:
    """The path and query of a fresh upload URL the gateway handed out."""
    url = urlsplit(start(gw).headers["x-goog-upload-url"])
    return url.path, url.query


def assert_googles_401(answer: Any) -> None:
    assert answer.status == 401
    assert answer.json["error"]["status"] == "UNAUTHENTICATED"


def test_the_upload_url_carries_a_token_but_never_the_key(gateway, sent):
    answer = start(gateway)
    url = answer.headers["x-goog-upload-url"]
    query = parse_qs(urlsplit(url).query)
    assert query["upload_id"] == [UPLOAD_ID] and len(query[PARAM]) == 1
    assert CLIENT_KEY not in url


def test_a_start_without_a_key_is_googles_401(gateway, sent):
    assert_googles_401(start(gateway, key=None))
    assert_googles_401(start(gateway, key="AIza-nobody"))
    assert sent == []


def test_an_upload_url_without_its_token_is_googles_401(gateway, sent):
    path, query = upload_url(gateway)
    token, rest = split_token(query)
    assert token
    assert_googles_401(upload(gateway, f"{path}?{rest}"))
    assert len(sent) == 1  # the start only


def test_a_token_opens_only_its_own_upload_url(gateway, sent):
    path, query = upload_url(gateway)
    token, rest = split_token(query)
    assert token
    other = rest.replace(UPLOAD_ID, "another-upload")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (with_token(other, token), with_token(rest, forged),
                f"{with_token(rest, token)}&{PARAM}={token}",
                with_token(rest, token).replace("/", "") + "x"):
        answer = upload(gateway, f"{path}?{bad}")
        assert_googles_401(answer)
    assert_googles_401(upload(gateway, f"/upload/v1beta/other?{with_token(rest, token)}"))
    assert len(sent) == 1
    assert upload(gateway, f"{path}?{with_token(rest, token)}").status == 200


def test_an_expired_token_is_googles_401(gateway, sent, upstream):
    path, query = upload_url(gateway)
    _, rest = split_token(query)
    long_ago = Sealer(SECRET.encode(), clock=lambda: 1_000.0)
    stale = long_ago.seal(CLIENT_KEY, upstream.origin, path, rest)
    assert_googles_401(upload(gateway, f"{path}?{with_token(rest, stale)}"))
    other_secret = Sealer(b"another gateway").seal(CLIENT_KEY, upstream.origin, path, rest)
    assert_googles_401(upload(gateway, f"{path}?{with_token(rest, other_secret)}"))
    fresh = Sealer(SECRET.encode()).seal(CLIENT_KEY, upstream.origin, path, rest)
    assert upload(gateway, f"{path}?{with_token(rest, fresh)}").status == 200


def test_a_token_for_another_backend_is_refused_before_it_goes_upstream(gateway, sent):
    path, query = upload_url(gateway)
    _, rest = split_token(query)
    token = Sealer(SECRET.encode()).seal(CLIENT_KEY, "http://elsewhere.invalid:9", path, rest)
    answer = upload(gateway, f"{path}?{with_token(rest, token)}")
    assert answer.status == 400 and answer.json["error"]["status"] == "INVALID_ARGUMENT"
    assert len(sent) == 1


def test_a_token_of_a_key_no_longer_valid_is_a_401(gateway, sent, upstream):
    """The token carries the key, so the key is checked again on every follow-up."""
    path, query = upload_url(gateway)
    _, rest = split_token(query)
    token = Sealer(SECRET.encode()).seal("AIza-removed-key", upstream.origin, path, rest)
    assert_googles_401(upload(gateway, f"{path}?{with_token(rest, token)}"))
    assert len(sent) == 1


def test_the_sdk_gets_googles_401_for_a_wrong_key(gateway, sent):
    with pytest.raises(errors.ClientError) as raised:
        sdk(gateway, "AIza-nobody").files.upload(
            file=io.BytesIO(b"x"), config=types.UploadFileConfig(mime_type="text/plain"))
    assert raised.value.code == 401
    assert sent == []


# ----------------------------------------------------------------- the token, no network


def test_a_token_opens_until_it_expires():
    now = [1_000.0]
    sealer = Sealer(b"s", clock=lambda: now[0], lifetime=60)
    token = sealer.seal("key", "g", "/upload/v1beta/files", "upload_id=a")
    opened = sealer.open(token, "/upload/v1beta/files", "upload_id=a")
    assert opened is not None and (opened.key, opened.scope) == ("key", "g")
    assert sealer.open(token, "/upload/v1beta/files", "upload_id=b") is None
    assert sealer.open("", "/upload/v1beta/files", "upload_id=a") is None
    assert sealer.open("%%%", "/upload/v1beta/files", "upload_id=a") is None
    now[0] += 61
    assert sealer.open(token, "/upload/v1beta/files", "upload_id=a") is None


@pytest.mark.parametrize(("query", "found"), [
    ("upload_id=a", (None, "upload_id=a")),
    (f"upload_id=a&{PARAM}=t", ("t", "upload_id=a")),
    (f"{PARAM}=t&upload_id=a", ("t", "upload_id=a")),
    (f"{PARAM}=t&{PARAM}=u&x=1", ("", "x=1")),
    (f"x{PARAM}=t", (None, f"x{PARAM}=t")),
])
def test_split_token(query, found):
    assert split_token(query) == found
