"""The gateway runs mitmproxy's messages without its debug-mode type check (as `python -O`
would); the messages themselves are the same."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.http import MessageData

from modelway.runner import without_debug_checks


def _response(started: object) -> http.Response:
    return http.Response(b"HTTP/1.1", 200, b"OK", http.Headers(), b"", None, started, None)  # type: ignore[arg-type]


def test_messages_are_built_without_the_debug_type_check():
    original = MessageData.__post_init__
    with pytest.raises(TypeError):  # mitmproxy's own check, before
        _response("not a time")
    try:
        without_debug_checks()
        without_debug_checks()  # twice is once
        assert _response("not a time").status_code == 200
        answer = http.Response.make(201, b'{"a": 1}', {"content-type": "application/json"})
        assert (answer.status_code, answer.json(), answer.headers["content-type"]) == (
            201, {"a": 1}, "application/json",
        )
    finally:
        MessageData.__post_init__ = original  # type: ignore[method-assign]
