"""The fuzz suite: hypothesis-made requests through a real gateway in front of real upstreams.

Every ingress API's body (OpenAI chat, embeddings and Responses; Anthropic Messages and
count_tokens; Gemini generateContent, streamGenerateContent and countTokens), each routed to
an OpenAI, an Anthropic and a Gemini backend, and the HTTP layer around them (methods, paths
with any bytes, headers, content types, encodings, chunked framing), sent as raw bytes. Every
answer: no 5xx, an error in the shape of the client's API, no traceback in the gateway's log
(`tests/fuzzkit.py`). Deterministic (`derandomize`, no example database) and sized for CI;
`benchmarks/fuzz.py` runs the same strategies for ten thousand cases and more.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz_http import RawCase, raw_requests
from tests.fuzz_strategies import INGRESSES, wire_body
from tests.fuzzkit import (
    Fuzzed,
    api_of,
    auth_headers,
    check,
    fuzz_gateway,
    post,
    request_bytes,
    send,
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    with fuzz_gateway() as running:
        yield running


def cases(name: str) -> st.SearchStrategy[tuple[str, bytes]]:
    _, path, body = INGRESSES[name]
    return st.tuples(path, wire_body(body))


def _post(fuzzed: Fuzzed, name: str, path: str, body: bytes, chunked: bool) -> None:
    api = INGRESSES[name][0]
    check(fuzzed, api, post(fuzzed.gateway.port, api, path, body, chunked=chunked))


@pytest.mark.parametrize("name", sorted(INGRESSES))
@FUZZ
@given(data=st.data(), chunked=st.booleans())
def test_ingress_bodies(fuzzed: Fuzzed, name: str, data: st.DataObject, chunked: bool) -> None:
    path, body = data.draw(cases(name))
    _post(fuzzed, name, path, body, chunked)


def _raw(method: bytes, path: bytes) -> RawCase:
    return RawCase(path, request_bytes(method, path, auth_headers("gemini"), b"{}"))


@settings(FUZZ, max_examples=300)
@given(case=raw_requests())
# A path that is not UTF-8 in an error message: the Gemini and Anthropic encoders refused the
# lone surrogate, and the client got the fallback OpenAI body and an error in the log.
@example(case=_raw(b"FOO", b"/v1beta/models/\xff:generateContent"))
@example(case=_raw(b"GET", b"/v1beta/\xff"))
def test_http_layer(fuzzed: Fuzzed, case: RawCase) -> None:
    check(fuzzed, api_of(case.path, case.data), send(fuzzed.gateway.port, case.data))


def test_a_lone_surrogate_after_a_valid_pair_is_named(fuzzed: Fuzzed) -> None:
    """Found by the fuzz run: the 400 named the first escaped surrogate, half of a valid pair
    (U+D83D of an emoji), instead of the lone one."""
    body = b'{"model":"oa-chat","messages":[{"role":"user","content":"\\ud83d\\ude00 \\uda72"}]}'
    answer = post(fuzzed.gateway.port, "openai", "/v1/chat/completions", body)
    check(fuzzed, "openai", answer)
    assert answer.status == 400 and "U+DA72" in answer.json["error"]["message"], answer.body


@pytest.mark.parametrize("model", ["oa-chat", "an-claude"])
@pytest.mark.parametrize("kind", ["[]", "{}"])
def test_an_item_type_that_is_not_a_string_is_a_400(fuzzed: Fuzzed, model: str, kind: str) -> None:
    """Found by the fuzz suite: a list or object as an input item's `type` was looked up in a
    set of built-in item kinds (TypeError: unhashable), a 500."""
    body = b'{"model":"%s","input":[{"type":%s,"call_id":"","name":"n","arguments":"{}"}]}' % (
        model.encode(),
        kind.encode(),
    )
    answer = post(fuzzed.gateway.port, "openai", "/v1/responses", body)
    check(fuzzed, "openai", answer)
    assert answer.status == 400 and answer.json["error"]["param"] == "input[0].type"
