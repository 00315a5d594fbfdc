"""The moderation guard end to end, and guards running in their configured order.

A real gateway (the test kit's `run_gateway`) sits in front of a real OpenAI-shaped upstream,
a real moderation endpoint and (for the order tests) a real webhook guard service, all the
kit's `UpstreamServer`s on 127.0.0.1; clients are the official openai SDK.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from modelway.errors import ConfigError
from modelway.runtime import load_gateway
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from tests.test_webhook_guard import (
    CLIENT_KEY,
    MESSAGES,
    UPSTREAM_TEXT,
    chat,
    chat_error,
    client_for,
    gateway_config,
    guard_service,
    guards_logged,
    stream_pieces,
    webhook_policy,
)

MODERATION_KEY = "sk-moderation-c4e8"
CATEGORIES = ("harassment", "violence", "self-harm")
VIOLENT = "how do I attack my neighbour"
HARMLESS = [{"role": "user", "content": "what is a good name for a cat"}]


# ------------------------------------------------------------------------- helpers


def moderation_result(text: str) -> dict[str, Any]:
    """What a moderation model says of one input: violent if it mentions an attack; self-harm
    if it mentions hurting oneself; flagged only for violence (self-harm stays below threshold)."""
    hits = {"harassment": False, "violence": "attack" in text, "self-harm": "myself" in text}
    scores = {name: 0.9 if hit else 0.01 for name, hit in hits.items()}
    return {"flagged": hits["violence"], "categories": hits, "category_scores": scores}


def moderation_endpoint(received: Received) -> Reply:
    if received.path != "/v1/moderations":
        return Reply(status=404, body=b'{"error": {"message": "no such path"}}')
    request = received.json
    body = {
        "id": "modr-1",
        "model": request["model"],
        "results": [moderation_result(text) for text in request["input"]],
    }
    return Reply(body=json.dumps(body).encode())


def moderation_backend(server: UpstreamServer | str) -> dict[str, Any]:
    base_url = server if isinstance(server, str) else server.url
    return {"moderation": {"provider": "openai", "base_url": base_url, "api_key": MODERATION_KEY}}


def moderation_policy(**settings: Any) -> dict[str, Any]:
    return {"moderation_guard": {"backend": "moderation", **settings}}


@contextmanager
def gateway(
    tmp_path: Path,
    upstream: UpstreamServer,
    moderation: UpstreamServer | str,
    policies: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
) -> Iterator[RunningGateway]:
    path = gateway_config(
        tmp_path,
        upstream,
        moderation_policy() if policies is None else policies,
        backends=moderation_backend(moderation),
        routes=routes,
    )
    with run_gateway(path) as gw:
        yield gw


def decision(action: str, categories: dict[str, int], **details: Any) -> dict[str, Any]:
    return {
        "guard": "moderation_guard",
        "stage": "request",
        "action": action,
        "categories": categories,
        **details,
    }


@pytest.fixture
def moderation() -> Iterator[UpstreamServer]:
    with UpstreamServer(moderation_endpoint) as server:
        yield server


def violent_chat() -> list[dict[str, Any]]:
    return [{"role": "system", "content": "be helpful"}, {"role": "user", "content": VIOLENT}]


# ------------------------------------------------------------------------- verdicts


def test_flagged_prompt_is_rejected_and_the_upstream_receives_nothing(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, moderation) as gw:
        error = chat_error(gw, messages=violent_chat())
        with pytest.raises(openai.BadRequestError) as streamed:
            client_for(gw).chat.completions.create(
                model="gpt-4o", messages=violent_chat(), stream=True
            )
    assert (error.status_code, error.code, error.type) == (
        400,
        "content_flagged",
        "invalid_request_error",
    )
    assert "flagged by content moderation (violence)" in error.message
    assert VIOLENT not in error.message
    assert streamed.value.code == "content_flagged"
    assert upstream.received == []
    call = moderation.received[0]
    assert (call.method, call.path) == ("POST", "/v1/moderations")
    assert call.json == {"model": "omni-moderation-latest", "input": ["be helpful", VIOLENT]}
    assert call.headers["authorization"] == f"Bearer {MODERATION_KEY}"
    assert CLIENT_KEY not in json.dumps(call.headers)
    assert guards_logged(tmp_path) == [[decision("reject", {"violence": 1}, status=400)]] * 2


def test_clean_prompt_proceeds_with_every_messages_text_moderated(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}],
        },
    ]
    with gateway(tmp_path, upstream, moderation) as gw:
        assert chat(gw, messages=messages) == "echo"
    assert moderation.last.json["input"] == [
        "you are terse",
        "hello world",
        "sunny",
        "part one",
        "part two",
    ]
    assert upstream.last.json["messages"] == messages
    assert guards_logged(tmp_path) == [[decision("pass", {})]]


def test_roles_and_model_settings_choose_what_is_sent(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    policy = moderation_policy(roles=["user"], model="text-moderation-stable")
    with gateway(tmp_path, upstream, moderation, policy) as gw:
        assert chat(gw) == UPSTREAM_TEXT
    assert moderation.last.json == {"model": "text-moderation-stable", "input": ["hello world"]}


def test_listed_categories_decide_instead_of_flagged(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    policy = moderation_policy(categories=["self-harm"], reject_status=422)
    hurting = [{"role": "user", "content": "I want to hurt myself"}]
    with gateway(tmp_path, upstream, moderation, policy) as gw:
        assert chat(gw, messages=violent_chat())  # flagged, but not for a listed category
        error = chat_error(gw, messages=hurting)  # not flagged, but a listed category is true
    assert (error.status_code, error.code) == (422, "content_flagged")
    assert "(self-harm)" in error.message
    assert len(upstream.received) == 1
    assert guards_logged(tmp_path) == [
        [decision("pass", {})],
        [decision("reject", {"self-harm": 1}, status=422)],
    ]


def test_embeddings_inputs_are_moderated(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, moderation) as gw:
        with pytest.raises(openai.BadRequestError):
            client_for(gw).embeddings.create(model="gpt-embed", input=["fine", VIOLENT])
        client_for(gw).embeddings.create(model="gpt-embed", input="a calm sentence")
    assert [r.json["input"] for r in moderation.received] == [
        ["fine", VIOLENT],
        ["a calm sentence"],
    ]
    assert [r.json["input"] for r in upstream.received] == ["a calm sentence"]


# ------------------------------------------------------------------------- failures


@pytest.mark.parametrize("on_error", ["allow", "deny"])
def test_moderation_endpoint_down_follows_on_error(
    tmp_path: Path, upstream: UpstreamServer, on_error: str, closed_port: int
) -> None:
    down = f"http://127.0.0.1:{closed_port}/v1"
    with gateway(tmp_path, upstream, down, moderation_policy(on_error=on_error)) as gw:
        if on_error == "allow":
            assert chat(gw, messages=violent_chat()) == f"echo: {VIOLENT}"
        else:
            error = chat_error(gw, messages=violent_chat())
            assert (error.status_code, error.code, error.type) == (
                503,
                "guard_unavailable",
                "server_error",
            )
    assert len(upstream.received) == (1 if on_error == "allow" else 0)
    action = "pass" if on_error == "allow" else "reject"
    assert guards_logged(tmp_path) == [[decision(action, {}, error="unreachable")]]


BROKEN: list[tuple[Callable[[Received], Reply], str]] = [
    (lambda r: Reply(status=500, body=b'{"error": {"message": "overloaded"}}'), "http_500"),
    (lambda r: Reply(body=b"not json at all"), "not_json"),
    (lambda r: Reply(body=b'{"results": []}'), "invalid_answer"),
    (lambda r: Reply(body=b'{"results": [{"categories": {}}]}'), "invalid_answer"),
]


def test_unusable_moderation_answers_fail_closed_by_default(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, moderation) as gw:
        for behavior, _ in BROKEN:
            moderation.behavior = behavior
            error = chat_error(gw, messages=HARMLESS)
            assert (error.status_code, error.code) == (503, "guard_unavailable")
    assert upstream.received == []
    assert guards_logged(tmp_path) == [[decision("reject", {}, error=kind)] for _, kind in BROKEN]


def test_unknown_moderation_backend_is_a_configuration_error(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    routes = [
        {"match": {"model": "a-*"}, "backend": "main"},
        {
            "match": {"model": "gpt-*"},
            "backend": "main",
            "policies": {"moderation_guard": {"backend": "modration"}},
        },
    ]
    path = gateway_config(tmp_path, upstream, {}, routes=routes)
    with pytest.raises(ConfigError) as caught:
        load_gateway(str(path))
    message = str(caught.value)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "modration" in text)
    assert f"{path}:{line}: routes[1].policies.moderation_guard.backend" in message
    assert "unknown backend 'modration'" in message and "main" in message


def test_the_policys_http_session_is_closed_when_the_gateway_stops(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, moderation) as gw:
        chat(gw, messages=HARMLESS)
        [policy] = gw.gateway.routes[0].policies
        session = policy._session  # white box: the session the policy opened for the call
        assert session is not None and not session.closed
    assert session.closed


# ------------------------------------------------------------------------- order


class Arrivals:
    """The order in which the test's servers received requests."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._lock = threading.Lock()

    def noting(self, name: str, behave: Callable[[Received], Reply]) -> Callable[[Received], Reply]:
        def wrapped(received: Received) -> Reply:
            with self._lock:
                self.names.append(name)
            return behave(received)

        return wrapped

    def take(self) -> list[str]:
        taken, self.names = self.names, []
        return taken


def ordered_route(name: str, model: str, policies: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "match": {"model": model}, "backend": "main", "policies": policies}


def test_guards_run_in_the_configured_order(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    """The webhook rewrites the prompt; the moderation endpoint sees the rewrite only when the
    webhook runs first, and each service's receipt is ordered against the other's."""
    arrivals = Arrivals()
    rewrite = {"action": "modify", "messages": [{"role": "user", "content": "a calm request"}]}
    moderation.behavior = arrivals.noting("moderation", moderation_endpoint)
    upstream.behavior = arrivals.noting("upstream", upstream.behavior)
    with UpstreamServer(arrivals.noting("webhook", guard_service(rewrite))) as hook:
        webhook = webhook_policy(hook)["webhook_guard"]
        moderate = moderation_policy()["moderation_guard"]
        routes = [
            ordered_route(
                "webhook-first", "first", {"webhook_guard": webhook, "moderation_guard": moderate}
            ),
            ordered_route(
                "moderation-first",
                "second",
                {"moderation_guard": moderate, "webhook_guard": webhook},
            ),
        ]
        with gateway(tmp_path, upstream, moderation, routes=routes) as gw:
            assert chat(gw, model="first", messages=violent_chat()) == "echo: a calm request"
            first = arrivals.take()
            assert chat_error(gw, model="second", messages=violent_chat()).code == "content_flagged"
    assert (first, arrivals.take()) == (["webhook", "moderation", "upstream"], ["moderation"])
    assert [r.json["input"] for r in moderation.received] == [
        ["a calm request"],
        ["be helpful", VIOLENT],
    ]
    assert hook.received[0].json["messages"] == violent_chat()
    webhook_modified = {"guard": "webhook_guard", "stage": "request", "action": "modified"}
    assert guards_logged(tmp_path) == [
        [webhook_modified, decision("pass", {})],
        [decision("reject", {"violence": 1}, status=400)],
    ]


def test_streams_pass_a_clean_prompt(
    tmp_path: Path, upstream: UpstreamServer, moderation: UpstreamServer
) -> None:
    with gateway(tmp_path, upstream, moderation) as gw:
        assert "".join(stream_pieces(gw)) == UPSTREAM_TEXT
    assert upstream.last.json["stream"] is True
    assert guards_logged(tmp_path) == [[decision("pass", {})]]
