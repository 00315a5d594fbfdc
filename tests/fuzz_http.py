"""Hypothesis strategies for the HTTP layer: methods, paths (non-UTF-8 bytes, huge, escapes),
headers (any bytes, odd content types, duplicated), content encodings (gzip, broken gzip,
unknown) and framing (chunked, chunk extensions, a bad chunk size, trailers).

A case is raw request bytes and the path it names, so the check knows whose error shape the
answer must have. Nothing here declares more body than it sends (the gateway would rightly
wait for the rest).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.fuzzkit import CLIENT_KEY, request_bytes

KNOWN_PATHS = [
    b"/v1/chat/completions",
    b"/v1/embeddings",
    b"/v1/responses",
    b"/v1/messages",
    b"/v1/messages/count_tokens",
    b"/v1beta/models/ge-gemini:generateContent",
    b"/v1beta/models/ge-gemini:streamGenerateContent?alt=sse",
    b"/v1beta/models/ge-gemini:countTokens",
    b"/v1/models",
    b"/v1/models/oa-chat",
    b"/v1/responses/resp_x",
    b"/v1/responses/resp_x/input_items",
    b"/healthz",
    b"/readyz",
    b"/modelway/stats",
    b"/modelway/reload",
    b"/v1/files",
    b"/",
    b"/v1beta/models/ge-gemini:embedContent",
    b"/v1/models/ge-gemini:generateContent",
]
METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"TRACE", b"FOO"]
PATH_BYTES = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(c for c in b if c not in b" \r\n\t") or b"x"
)
paths = st.one_of(
    st.sampled_from(KNOWN_PATHS),
    st.tuples(st.sampled_from(KNOWN_PATHS), PATH_BYTES).map(lambda t: t[0] + t[1]),
    st.tuples(st.sampled_from(KNOWN_PATHS), PATH_BYTES).map(lambda t: t[0] + b"/" + t[1]),
    st.sampled_from(
        [
            b"/\xff",
            b"/v1/models/\xff",
            b"/v1/%ff%fe",
            b"/v1/../../etc/passwd",
            b"/v1/chat/completions?" + b"a=1&" * 3000,
            b"/" + b"a" * 70000,
            b"*",
            b"/v1beta/models/\xed\xa0\x80:generateContent",
            b"/v1//chat//completions",
            b"http://127.0.0.1/v1/chat/completions",
            b"/v1/chat/completions#frag",
            b"/v1beta/models/:generateContent",
            b"/v1beta/models/a%00b:countTokens",
        ]
    ),
)
HEADER_BYTES = st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12).map(str.encode)
content_types = st.sampled_from(
    [
        b"application/json",
        b"application/json; charset=utf-8",
        b"application/json; charset=latin-1",
        b"text/plain",
        b"multipart/form-data; boundary=x",
        b"application/x-www-form-urlencoded",
        b"application/\xffjson",
        b"",
        b"application/json; charset=\xed\xa0\x80",
        b";;;",
    ]
)
auth = st.sampled_from(
    [
        [(b"Authorization", b"Bearer " + CLIENT_KEY.encode())],
        [(b"x-api-key", CLIENT_KEY.encode()), (b"anthropic-version", b"2023-06-01")],
        [(b"x-goog-api-key", CLIENT_KEY.encode())],
        [(b"Authorization", b"Bearer \xff\xfe")],
        [(b"Authorization", b"Basic Zm9vOmJhcg==")],
        [(b"x-api-key", b"\xed\xa0\x80")],
        [],
    ]
)
extra_headers = st.lists(
    st.one_of(
        st.tuples(TOKEN, HEADER_BYTES),
        st.tuples(
            st.sampled_from(
                [
                    b"anthropic-version",
                    b"anthropic-beta",
                    b"openai-beta",
                    b"x-modelway-variant",
                    b"x-goog-api-client",
                    b"idempotency-key",
                    b"accept",
                    b"accept-encoding",
                    b"x-request-id",
                    b"expect",
                    b"upgrade",
                    b"te",
                    b"x-forwarded-for",
                    b"content-length",
                    b"host",
                    b"cookie",
                ]
            ),
            HEADER_BYTES,
        ),
    ),
    max_size=4,
)
BODY = b'{"model":"oa-chat","messages":[{"role":"user","content":"hi"}]}'
bodies = st.sampled_from(
    [
        None,
        b"",
        BODY,
        BODY.replace(b"oa-chat", b"an-claude"),
        b'{"model":"an-claude","max_tokens":9,'
        b'"messages":[{"role":"user","content":"hi"}],"stream":true}',
        b'{"contents":[{"parts":[{"text":"hi"}]}]}',
        b'{"model":"oa-chat","input":"hi"}',
        b"\xff\xfe",
        b"[]",
    ]
)


@dataclass(frozen=True)
class RawCase:
    path: bytes
    data: bytes


def _encode(body: bytes, encoding: bytes) -> bytes:
    if encoding == b"gzip":
        return gzip.compress(body, mtime=0)
    if encoding == b"deflate":
        return zlib.compress(body)
    if encoding == b"bad-gzip":
        return gzip.compress(body, mtime=0)[:-6] + b"\x00garbage"
    return body


@st.composite
def raw_requests(draw: st.DrawFn) -> RawCase:
    method = draw(st.sampled_from(METHODS))
    path = draw(paths)
    body = draw(bodies)
    headers = list(draw(auth))
    if draw(st.booleans()):
        headers.append((b"Content-Type", draw(content_types)))
    encoding = draw(
        st.sampled_from(
            [None, b"gzip", b"deflate", b"bad-gzip", b"br", b"x-unknown", b"gzip, gzip"]
        )
    )
    if body is not None and encoding is not None:
        body = _encode(body, encoding)
        headers.append((b"Content-Encoding", b"gzip" if encoding == b"bad-gzip" else encoding))
    headers += [
        (name, value)
        for name, value in draw(extra_headers)
        if name.lower() not in (b"content-length", b"transfer-encoding")
    ]
    framing = draw(st.sampled_from(["length", "chunked", "extension", "bad-size", "trailer"]))
    if body is None or framing == "length":
        return RawCase(path, request_bytes(method, path, headers, body))
    if framing == "chunked":
        return RawCase(path, request_bytes(method, path, headers, body, chunked=True))
    # A chunk size that is not hex is answered 400 in the client's shape too
    # (`modelway.protocolerrors`), no longer by closing the connection without a word.
    return RawCase(path, _framed(method, path, headers, body, framing))


def _framed(
    method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes, framing: str
) -> bytes:
    chunks = {
        "extension": b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(body), body),
        "bad-size": b"zz\r\n%s\r\n0\r\n\r\n" % body,
        "trailer": b"%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(body), body),
    }[framing]
    return request_bytes(method, path, [*headers, (b"Transfer-Encoding", b"chunked")], chunks)
