"""The gateway runs mitmproxy's messages without its debug-mode type check (as `python -O`
would); the messages themselves are the same."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.http import MessageData

from modelway.runner import MITMPROXY_DEBUG_CHECK, without_debug_checks


def _response(started: object) -> http.Response:
    return http.Response(b"HTTP/1.1", 200, b"OK", http.Headers(), b"", None, started, None)  # type: ignore[arg-type]


@pytest.mark.skipif(MITMPROXY_DEBUG_CHECK is None, reason="python -O: mitmproxy checks nothing")
def test_messages_are_built_without_the_debug_type_check():
    current = MessageData.__post_init__  # an in-process gateway of another test may have run
    MessageData.__post_init__ = MITMPROXY_DEBUG_CHECK  # type: ignore[method-assign]
    try:
        with pytest.raises(TypeError):  # mitmproxy's own check, before
            _response("not a time")
        without_debug_checks()
        without_debug_checks()  # twice is once
        assert _response("not a time").status_code == 200
        answer = http.Response.make(201, b'{"a": 1}', {"content-type": "application/json"})
        assert (answer.status_code, answer.json(), answer.headers["content-type"]) == (
            201, {"a": 1}, "application/json",
        )
    finally:
        MessageData.__post_init__ = current  # type: ignore[method-assign]
