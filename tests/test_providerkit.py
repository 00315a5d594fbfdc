"""The provider kit (modelway.providerkit): credentials, JSON, errors, data URLs, decoders."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelway.config import BackendConfig
from modelway.context import ClientInfo, RequestContext
from modelway.errors import GatewayError
from modelway.providerkit import (
    TRUNCATED,
    SSEStreamDecoder,
    as_dict,
    as_int,
    as_list,
    as_str,
    backend_error,
    dumps,
    error_chunk,
    error_object,
    event_object,
    loads_or_none,
    parse_data_url,
    parse_error,
    request_key,
)
from modelway.sse import SSEEvent

GATEWAY_KEY = "sk-gateway-secret"
CLIENT_KEY = "sk-client-own"


def _ctx(key: str | None = CLIENT_KEY) -> RequestContext:
    client = ClientInfo("127.0.0.1", "anon", key)
    return RequestContext("r1", "POST", "/v1/chat/completions", "gw", {}, client)


# --------------------------------------------------------------------------- credentials


def test_request_key_is_the_backends_unless_passthrough():
    gateway = BackendConfig(provider="openai", api_key=GATEWAY_KEY)
    passthrough = BackendConfig(provider="openai", api_key=GATEWAY_KEY, auth="passthrough")
    assert request_key(_ctx(), gateway) == GATEWAY_KEY
    assert request_key(_ctx(), passthrough) == CLIENT_KEY
    assert request_key(_ctx(None), passthrough) is None
    assert request_key(_ctx(), BackendConfig(provider="openai")) is None


# --------------------------------------------------------------------------- JSON


def test_dumps_is_compact_utf8_and_matches_the_stdlib():
    value = {"a": [1, 2.5, None, True], "é": "naïve ☃", "n": {"x": "y"}}
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert dumps(value) == expected


def test_dumps_falls_back_for_what_orjson_cannot_encode():
    assert dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'
    assert dumps({1: "int key"}) == b'{"1":"int key"}'


def test_lone_surrogate_is_a_400_not_a_crash():
    value = json.loads('{"messages": [{"role": "user", "content": "a\\ud800b"}]}')
    with pytest.raises(GatewayError) as caught:
        dumps(value)
    error = caught.value
    assert (error.status, error.code) == (400, "invalid_unicode")
    assert "surrogate" in error.message and "U+D800" in error.message


def test_loads_or_none():
    assert loads_or_none(b'{"a": 1}') == {"a": 1}
    assert loads_or_none(b"12345678901234567890123") == 12345678901234567890123
    assert loads_or_none(b"<html>") is None
    assert loads_or_none(b"\xff\xfe") is None


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES, st.sampled_from([True, False]))
def test_loads_or_none_reads_what_the_standard_library_reads(value, as_text):
    """The orjson fast path cannot change a value: big integers (any run of 19 digits) and
    what orjson refuses go through the standard library."""
    text = json.dumps(value, ensure_ascii=False)
    body = text if as_text else text.encode()
    assert repr(loads_or_none(body)) == repr(json.loads(text))


def test_loads_or_none_keeps_what_orjson_would_change_or_refuse():
    assert loads_or_none('{"n": 18446744073709551616}') == {"n": 18446744073709551616}
    assert loads_or_none(b"[NaN, -Infinity]") is not None
    assert loads_or_none('"\\ud800"') == "\ud800"


def test_coercions():
    assert [as_int(v) for v in (3, True, "3", None, 2.0)] == [3, 0, 0, 0, 0]
    assert as_int(None, 7) == 7
    assert as_dict({"a": 1}) == {"a": 1} and as_dict([1]) == {}
    assert as_list([1]) == [1] and as_list({"a": 1}) == []
    assert [as_str(v) for v in ("x", "", 1, None)] == ["x", None, None, None]


def test_event_object_refuses_what_is_not_an_object():
    assert event_object('{"a": 1}') == {"a": 1}
    for data in ("[1]", "not json", "3"):
        with pytest.raises(GatewayError) as caught:
            event_object(data)
        assert (caught.value.status, caught.value.code) == (502, "upstream_invalid_stream")


# --------------------------------------------------------------------------- errors


def test_error_object_and_backend_error():
    assert error_object({"error": {"message": "m"}}) == {"message": "m"}
    assert error_object([{"error": {"message": "m"}}]) == {"message": "m"}
    assert error_object({"error": "flat"}) is None and error_object(None) is None
    error = backend_error(429, "slow down", None, "rate_limited", 7)
    assert (error.status, error.message, error.type, error.code, error.param) == (
        429,
        "slow down",
        "invalid_request_error",
        "rate_limited",
        None,
    )
    assert backend_error(503, "").message == "the backend answered HTTP 503"
    assert backend_error(503, "").type == "server_error"


def _read(status: int, data: Any) -> GatewayError:
    error = backend_error(status, (error_object(data) or {}).get("message"))
    error.headers["retry-after"] = "9"
    return error


@pytest.mark.parametrize("status", [401, 403])
def test_parse_error_hides_the_gateways_rejected_key(status):
    backend = BackendConfig(provider="x", api_key=GATEWAY_KEY)
    body = json.dumps({"error": {"message": f"bad key {GATEWAY_KEY}"}}).encode()
    error = parse_error(backend, status, {}, body, _read)
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert GATEWAY_KEY not in error.message and "bad key" not in error.message
    passthrough = backend.model_copy(update={"auth": "passthrough"})
    assert parse_error(passthrough, status, {}, body, _read).status == status


def test_parse_error_keeps_the_backends_retry_after_header():
    backend = BackendConfig(provider="x")
    body = b'{"error": {"message": "slow"}}'
    assert parse_error(backend, 429, {}, body, _read).headers == {"retry-after": "9"}
    assert parse_error(backend, 429, {"retry-after": "2"}, body, _read).headers == {}


# --------------------------------------------------------------------------- data URLs


def test_data_url_parts():
    url = parse_data_url("data:Image/PNG;name=a.png;base64,iVBORw0KGgo=", "x")
    assert (url.media_type, url.data, url.params) == ("image/png", "iVBORw0KGgo=", ("name=a.png",))
    assert url.decode() == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png,abc",  # not base64
        "data:text/plain,hi%20there",  # RFC 2397 percent-encoding: not taken
        "data:;base64,AAAA",  # no media type
        "data:image;base64,AAAA",  # not type/subtype
        "data:image/png;base64,",  # empty
        "data:image/png;base64,AAA",  # bad padding
        "data:image/png;base64,AA AA",  # whitespace
        "data:image/png;base64,AA*A",  # not the base64 alphabet
        "https://example.com/a.png",
    ],
)
def test_bad_data_urls_are_400_naming_the_field(url):
    with pytest.raises(GatewayError) as caught:
        parse_data_url(url, "messages[0].content[1].image_url.url")
    error = caught.value
    assert (error.status, error.code) == (400, "invalid_data_url")
    assert error.param == "messages[0].content[1].image_url.url"
    assert error.message.startswith("messages[0].content[1].image_url.url: ")


# --------------------------------------------------------------------------- stream decoders


class _Toy(SSEStreamDecoder):
    """Events are JSON chunks; `{"end": true}` is the end marker."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = False

    def translate(self, event: SSEEvent) -> list[dict[str, Any]]:
        data = event_object(event.data)
        if data.get("end"):
            self.ended = True
            return []
        return [data]

    @property
    def complete(self) -> bool:
        return self.ended

    def finish(self) -> list[dict[str, Any]]:
        return [{"choices": [], "usage": {}}]


def _sse(*events: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def test_base_decoder_complete_stream_ends_with_finish():
    decoder = _Toy()
    assert decoder.feed(_sse({"choices": [1]}, {"end": True})) == [{"choices": [1]}]
    assert decoder.close() == [{"choices": [], "usage": {}}]


def test_base_decoder_truncated_stream_gives_one_error_chunk():
    decoder = _Toy()
    assert decoder.feed(_sse({"choices": [1]})) == [{"choices": [1]}]
    [chunk] = decoder.close()
    assert chunk["error"]["code"] == TRUNCATED and chunk["error"]["status"] == 502
    assert decoder.feed(_sse({"choices": [2]})) == [] and decoder.close() == []


def test_base_decoder_nothing_after_the_first_error():
    decoder = _Toy()
    upstream = {"error": {"message": "overloaded"}}
    chunks = decoder.feed(_sse({"choices": [1]}, upstream, {"choices": [2]}))
    assert chunks == [{"choices": [1]}, upstream]
    assert decoder.feed(_sse({"choices": [3]}, {"end": True})) == []
    assert decoder.close() == []


def test_base_decoder_raised_error_becomes_the_error_chunk():
    decoder = _Toy()
    chunks = decoder.feed(_sse({"choices": [1]}) + b"data: {oops\n\n")
    assert chunks[0] == {"choices": [1]}
    assert chunks[1] == error_chunk(event_object_error())
    assert decoder.close() == []


def event_object_error() -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        event_object("{oops")
    return caught.value


# --------------------------------------------------------------------------- providers agree

GOOD_URLS = ["data:image/png;base64,iVBORw0KGgo=", "data:IMAGE/JPEG;name=a.jpg;base64,/9j/4AAQ"]
BAD_URLS = [
    "data:image/png,iVBORw0KGgo=",
    "data:image/png;base64,iVBORw0KGgo",
    "data:image/png;base64,iVBOR w0KGgo=",
    "data:image/png;base64,",
    "data:;base64,iVBORw0KGgo=",
    "data:image/png;charset=utf-8,abc",
]
WHERE = "messages[0].content[1].image_url.url"


def _body(url: str) -> dict[str, Any]:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return {"model": "m", "messages": [{"role": "user", "content": parts}]}


def _anthropic_image(url: str) -> tuple[str, str]:
    from modelway.plugins.providers.anthropic.request import request_to_anthropic

    block = request_to_anthropic(_body(url), default_max_tokens=8)["messages"][0]["content"][1]
    return block["source"]["media_type"], block["source"]["data"]


def _gemini_image(url: str) -> tuple[str, str]:
    from modelway.plugins.providers.gemini.request import to_gemini_request

    inline = to_gemini_request(_body(url))["contents"][0]["parts"][1]["inlineData"]
    return inline["mimeType"], inline["data"]


def _bedrock_image(url: str) -> tuple[str, str]:
    from modelway.plugins.providers.bedrock.request import converse_request

    image = converse_request(_body(url))["messages"][0]["content"][1]["image"]
    return "image/" + image["format"], image["source"]["bytes"]


PROVIDERS = [_anthropic_image, _gemini_image, _bedrock_image]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_providers_agree_on_good_data_urls(url):
    parsed = parse_data_url(url, WHERE)
    assert {read(url) for read in PROVIDERS} == {(parsed.media_type, parsed.data)}


@pytest.mark.parametrize("url", BAD_URLS)
def test_providers_agree_on_bad_data_urls(url):
    errors = []
    for read in PROVIDERS:
        with pytest.raises(GatewayError) as caught:
            read(url)
        errors.append(caught.value)
    assert {(e.status, e.code, e.param) for e in errors} == {(400, "invalid_data_url", WHERE)}
    assert len({e.message for e in errors}) == 1


@pytest.mark.parametrize(
    "data", ["data:application/pdf,JVBERi0=", "data:application/pdf;base64,JVB"]
)
def test_anthropic_and_gemini_agree_on_bad_file_data_urls(data):
    from modelway.plugins.providers.anthropic.request import request_to_anthropic
    from modelway.plugins.providers.gemini.request import to_gemini_request

    part = {"type": "file", "file": {"file_data": data, "filename": "a.pdf"}}
    body = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    params = set()
    for translate in (lambda b: request_to_anthropic(b, default_max_tokens=8), to_gemini_request):
        with pytest.raises(GatewayError) as caught:
            translate(body)
        params.add((caught.value.code, caught.value.param))
    assert params == {("invalid_data_url", "messages[0].content[0].file.file_data")}
