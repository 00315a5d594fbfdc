"""The webhook guard end to end: the openai SDK (and raw HTTP) through a real gateway.

A real gateway (the test kit's `run_gateway`) sits in front of a real OpenAI-shaped upstream
and a real guard service (both the kit's `UpstreamServer`s on 127.0.0.1); the tests check what
the client got, what the guard service and the upstream received, and the access log's guard
decisions.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

CLIENT_KEY = "sk-client-webhook-5e1"
BACKEND_KEY = "sk-backend-webhook-9a2"
MESSAGES = [
    {"role": "system", "content": "you are terse"},
    {"role": "user", "content": "hello world"},
]
UPSTREAM_TEXT = "echo: hello world"  # what fake_openai.openai_behavior answers to MESSAGES

Answer = dict[str, Any] | Reply | Callable[[dict[str, Any]], Any]


# ------------------------------------------------------------------------- helpers


def guard_service(answer: Answer, stall: float = 0.0) -> Callable[[Received], Reply]:
    """A guard service behavior: a fixed JSON answer, a Reply, or a function of the payload;
    sent after `stall` seconds (cut short when the server stops)."""

    def behave(received: Received) -> Reply:
        value = answer(received.json) if callable(answer) else answer
        reply = value if isinstance(value, Reply) else Reply(body=json.dumps(value).encode())
        reply.stall = stall
        return reply

    return behave


def gateway_config(
    tmp_path: Path,
    upstream: UpstreamServer,
    policies: dict[str, Any],
    backends: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
) -> Path:
    """Both guard plugins enabled, one keyed OpenAI backend, the access log in tmp_path."""
    main = {"provider": "openai", "base_url": upstream.url, "api_key": BACKEND_KEY}
    config = {
        "plugins": {
            "openai": None,
            "webhook_guard": None,
            "moderation_guard": None,
            "access_log": {"path": str(tmp_path / "access.log")},
        },
        "backends": {"main": main, **(backends or {})},
        "routes": routes
        or [
            {
                "name": "guarded",
                "match": {"model": "gpt-*"},
                "backend": "main",
                "policies": policies,
            }
        ],
    }
    return write_config(tmp_path, yaml.safe_dump(config, sort_keys=False))


def webhook_policy(service: UpstreamServer | str, **settings: Any) -> dict[str, Any]:
    url = service if isinstance(service, str) else f"http://127.0.0.1:{service.port}/check"
    return {"webhook_guard": {"url": url, **settings}}


@contextmanager
def gateway(
    tmp_path: Path, upstream: UpstreamServer, policies: dict[str, Any], **more: Any
) -> Iterator[RunningGateway]:
    with run_gateway(gateway_config(tmp_path, upstream, policies, **more)) as gw:
        yield gw


def client_for(gw: RunningGateway) -> openai.OpenAI:
    return gw.resource(
        "openai",
        lambda: openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30),
    )


def chat(gw: RunningGateway, model: str = "gpt-4o", messages: Any = MESSAGES) -> str | None:
    answer = client_for(gw).chat.completions.create(model=model, messages=messages)
    return answer.choices[0].message.content


def chat_error(gw: RunningGateway, **kwargs: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        chat(gw, **kwargs)
    return caught.value


def raw_chat(gw: RunningGateway) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(gw.host, gw.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps({"model": "gpt-4o", "messages": MESSAGES}),
            headers={"content-type": "application/json", "authorization": f"Bearer {CLIENT_KEY}"},
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def stream_pieces(gw: RunningGateway) -> list[str]:
    stream = client_for(gw).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    return [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]


def access_log(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "access.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def guards_logged(tmp_path: Path) -> list[list[dict[str, Any]]]:
    """The `extra.guards` list of every access-log record, in request order."""
    return [record.get("extra", {}).get("guards", []) for record in access_log(tmp_path)]


def decision(stage: str, action: str, **details: Any) -> dict[str, Any]:
    return {"guard": "webhook_guard", "stage": stage, "action": action, **details}


@pytest.fixture
def hook() -> Iterator[UpstreamServer]:
    with UpstreamServer(guard_service({"action": "pass"})) as server:
        yield server


# ------------------------------------------------------------------------- request stage


def test_pass_sends_the_prompt_to_the_service_and_unchanged_upstream(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, webhook_policy(hook)) as gw:
        assert chat(gw) == UPSTREAM_TEXT
    [call] = hook.received
    assert (call.method, call.path) == ("POST", "/check")
    assert call.headers["content-type"].startswith("application/json")
    assert call.json == {
        "stage": "request",
        "request_id": call.headers["x-request-id"],
        "route": "guarded",
        "model": "gpt-4o",
        "api": "openai.chat",
        "messages": MESSAGES,
        "segments": [
            {"role": m["role"], "kind": "system" if m["role"] == "system" else "text",
             "text": m["content"]}
            for m in MESSAGES
        ],
    }
    assert CLIENT_KEY not in json.dumps(call.headers) and BACKEND_KEY not in json.dumps(
        call.headers
    )
    assert upstream.last.json["messages"] == MESSAGES
    assert guards_logged(tmp_path) == [[decision("request", "pass")]]


def test_configured_headers_take_values_from_the_environment(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MW_GUARD_TOKEN", "guard-token-31f")
    policy = webhook_policy(hook, headers={"authorization": "Bearer ${MW_GUARD_TOKEN}"})
    with gateway(tmp_path, upstream, policy) as gw:
        chat(gw)
    assert hook.last.headers["authorization"] == "Bearer guard-token-31f"


def test_modify_replaces_the_messages_the_upstream_receives(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    rewritten = [
        {"role": "system", "content": "never reveal secrets"},
        {"role": "user", "content": [{"type": "text", "text": "hello [name]"}]},
    ]
    hook.behavior = guard_service({"action": "modify", "messages": rewritten})
    with gateway(tmp_path, upstream, webhook_policy(hook)) as gw:
        chat(gw)
    assert upstream.last.json["messages"] == rewritten
    assert guards_logged(tmp_path) == [[decision("request", "modified")]]


@pytest.mark.parametrize(
    ("answer", "settings", "status", "message"),
    [
        (
            {"action": "reject", "message": "no account numbers, please", "status": 451},
            {},
            451,
            "no account numbers, please",
        ),
        ({"action": "reject"}, {"reject_status": 403}, 403, "rejected by the webhook guard"),
    ],
    ids=["service-status", "configured-status"],
)
def test_reject_answers_in_the_openai_error_shape_and_sends_nothing_upstream(
    tmp_path: Path,
    upstream: UpstreamServer,
    hook: UpstreamServer,
    answer: dict[str, Any],
    settings: dict[str, Any],
    status: int,
    message: str,
) -> None:
    hook.behavior = guard_service(answer)
    with gateway(tmp_path, upstream, webhook_policy(hook, **settings)) as gw:
        error = chat_error(gw)
        raw_status, raw_body = raw_chat(gw)
        with pytest.raises(openai.APIStatusError) as streamed:
            stream_pieces(gw)
    assert (error.status_code, error.code, error.type) == (
        status,
        "content_rejected",
        "invalid_request_error",
    )
    assert message in error.message
    assert raw_status == status and message in raw_body["error"]["message"]
    assert set(raw_body["error"]) == {"message", "type", "param", "code"}
    assert streamed.value.status_code == status
    assert upstream.received == []
    assert guards_logged(tmp_path) == [[decision("request", "reject", status=status)]] * 3


def test_timeout_fails_open_when_on_error_is_allow(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    hook.behavior = guard_service({"action": "reject"}, stall=60)
    policy = webhook_policy(hook, timeout_seconds=0.2, on_error="allow")
    with gateway(tmp_path, upstream, policy) as gw:
        assert chat(gw) == UPSTREAM_TEXT
    assert len(hook.received) == 1
    assert upstream.last.json["messages"] == MESSAGES
    assert guards_logged(tmp_path) == [[decision("request", "pass", error="timeout")]]


def test_timeout_fails_closed_with_a_gateway_error(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    hook.behavior = guard_service({"action": "pass"}, stall=60)
    policy = webhook_policy(hook, timeout_seconds=0.2, on_error="deny")
    with gateway(tmp_path, upstream, policy) as gw:
        error = chat_error(gw)
    assert (error.status_code, error.code, error.type) == (503, "guard_unavailable", "server_error")
    assert "timeout" in error.message
    assert upstream.received == []
    assert guards_logged(tmp_path) == [[decision("request", "reject", error="timeout")]]


UNUSABLE: list[tuple[Answer, str]] = [
    (Reply(body=b"<html>guard is down</html>"), "not_json"),
    (Reply(status=500, body=b'{"action": "pass"}'), "http_500"),
    ({"action": "maybe"}, "invalid_answer"),
    ({"action": "modify"}, "invalid_answer"),
    ({"action": "modify", "messages": []}, "invalid_answer"),
    ({"action": "modify", "messages": [{"content": "no role"}]}, "invalid_answer"),
    ({"action": "modify", "text": "text is for answers"}, "invalid_answer"),
    ({"action": "reject", "status": 200}, "invalid_answer"),
    (["pass"], "invalid_answer"),
]


def test_unusable_answers_are_refused_when_failing_closed(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, webhook_policy(hook)) as gw:  # on_error: deny by default
        for answer, _ in UNUSABLE:
            hook.behavior = guard_service(answer)
            error = chat_error(gw)
            assert (error.status_code, error.code) == (503, "guard_unavailable"), answer
    assert upstream.received == []
    expected = [[decision("request", "reject", error=kind)] for _, kind in UNUSABLE]
    assert guards_logged(tmp_path) == expected


def test_unusable_answers_let_the_request_through_when_failing_open(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, webhook_policy(hook, on_error="allow")) as gw:
        for answer, _ in UNUSABLE:
            hook.behavior = guard_service(answer)
            assert chat(gw) == UPSTREAM_TEXT, answer
    assert [r.json["messages"] for r in upstream.received] == [MESSAGES] * len(UNUSABLE)
    expected = [[decision("request", "pass", error=kind)] for _, kind in UNUSABLE]
    assert guards_logged(tmp_path) == expected


def test_unreachable_service_fails_closed(
    tmp_path: Path, upstream: UpstreamServer, closed_port: int
) -> None:
    policy = webhook_policy(f"http://127.0.0.1:{closed_port}/check")
    with gateway(tmp_path, upstream, policy) as gw:
        error = chat_error(gw)
    assert (error.status_code, error.code) == (503, "guard_unavailable")
    assert upstream.received == []
    assert guards_logged(tmp_path) == [[decision("request", "reject", error="unreachable")]]


# ------------------------------------------------------------------------- response stage


def test_response_stage_modify_changes_the_answer(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    hook.behavior = guard_service({"action": "modify", "text": "[answer withheld in part]"})
    with gateway(tmp_path, upstream, webhook_policy(hook, stages=["response"])) as gw:
        assert chat(gw) == "[answer withheld in part]"
    [call] = hook.received
    assert {k: call.json[k] for k in ("stage", "route", "model", "choice", "text")} == {
        "stage": "response",
        "route": "guarded",
        "model": "gpt-4o",
        "choice": 0,
        "text": UPSTREAM_TEXT,
    }
    assert "messages" not in call.json
    assert guards_logged(tmp_path) == [[decision("response", "modified")]]


def test_response_stage_reject_withholds_the_answer(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    def by_stage(payload: dict[str, Any]) -> dict[str, Any]:
        if payload["stage"] == "request":
            return {"action": "pass"}
        return {"action": "reject", "message": "the answer leaks internals", "status": 422}

    hook.behavior = guard_service(by_stage)
    policy = webhook_policy(hook, stages=["request", "response"])
    with gateway(tmp_path, upstream, policy) as gw:
        error = chat_error(gw)
    assert (error.status_code, error.code) == (422, "content_rejected")
    assert "the answer leaks internals" in error.message
    assert [c.json["stage"] for c in hook.received] == ["request", "response"]
    assert len(upstream.received) == 1
    assert guards_logged(tmp_path) == [
        [decision("request", "pass"), decision("response", "reject", status=422)]
    ]


def test_response_stage_fails_closed_when_the_service_breaks(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    hook.behavior = guard_service({"action": "modify", "messages": MESSAGES})  # not for answers
    with gateway(tmp_path, upstream, webhook_policy(hook, stages=["response"])) as gw:
        error = chat_error(gw)
    assert (error.status_code, error.code) == (503, "guard_unavailable")
    assert UPSTREAM_TEXT not in error.message
    assert guards_logged(tmp_path) == [[decision("response", "reject", error="invalid_answer")]]


# ------------------------------------------------------------------------- streams


def test_streams_stay_incremental_without_buffer_streams(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    hook.behavior = guard_service({"action": "reject"})  # would reject any answer it saw
    policy = webhook_policy(hook, stages=["response"])
    with gateway(tmp_path, upstream, policy) as gw:
        pieces = stream_pieces(gw)
    assert "".join(pieces) == UPSTREAM_TEXT and len(pieces) > 1
    assert hook.received == []
    assert guards_logged(tmp_path) == [[decision("stream", "pass", unchecked=True)]]


def test_buffered_stream_is_checked_whole_and_modified(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    def by_stage(payload: dict[str, Any]) -> dict[str, Any]:
        if payload["stage"] == "request":
            return {"action": "pass"}
        return {"action": "modify", "text": "a checked answer"}

    hook.behavior = guard_service(by_stage)
    policy = webhook_policy(hook, stages=["request", "response"], buffer_streams=True)
    with gateway(tmp_path, upstream, policy) as gw:
        pieces = stream_pieces(gw)
    assert "".join(pieces) == "a checked answer"
    stream_call = hook.received[-1].json
    assert (stream_call["stage"], stream_call["choice"]) == ("stream", 0)
    assert stream_call["text"] == UPSTREAM_TEXT
    assert guards_logged(tmp_path) == [
        [decision("request", "pass"), decision("stream", "modified")]
    ]


def test_buffered_stream_rejection_ends_the_stream_with_an_error_and_no_text(
    tmp_path: Path, upstream: UpstreamServer, hook: UpstreamServer
) -> None:
    hook.behavior = guard_service({"action": "reject", "message": "not this answer"})
    policy = webhook_policy(hook, stages=["response"], buffer_streams=True)
    seen: list[str] = []
    with gateway(tmp_path, upstream, policy) as gw:
        stream = client_for(gw).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                seen.extend(c.delta.content or "" for c in chunk.choices)
    assert "not this answer" in caught.value.message
    assert "".join(seen) == ""
    assert guards_logged(tmp_path) == [[decision("stream", "reject", status=400)]]
