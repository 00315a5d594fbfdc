"""Traffic management and policies on Responses requests, as on chat: enrichment, PII
masking of input and output (streams included, on both lanes), failover before the first
byte, continuation mid-stream, A/B cohorts, the access log's tokens and TTFT, and the first
events reaching the client while the upstream still generates."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelway import hookimpl
from modelway.testing.fake_openai import openai_stream_chunks
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Reply, UpstreamServer
from tests.responses_setup import KEYS, Upstreams, backends, shared_fixtures, upstreams
from tests.responses_upstreams import response_events, sse
from tests.test_responses_api import create, output_text, stream

Json = dict[str, Any]
EMAIL = "jane.doe@example.com"
PII = {"entities": ["EMAIL_ADDRESS"], "action": "mask"}


class Recorder:
    """Keeps every access-log record."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    @hookimpl
    def modelway_request_done(self, ctx: Any, record: dict[str, Any]) -> None:
        self.records.append(dict(record))


def dropping(received: Any) -> Reply:
    chunks = openai_stream_chunks(received.json, ["alpha", "beta", "gamma", "delta"])
    return Reply(headers={"content-type": "text/event-stream"}, chunks=chunks, drop_after=3)


def continuing(received: Any) -> Reply:
    chunks = openai_stream_chunks(received.json, [" delta"])
    return Reply(headers={"content-type": "text/event-stream"}, chunks=chunks)


class Gate:
    """A stream that sends its first events, then waits until the test has read them."""

    def __init__(self, events: Callable[[Json], list[bytes]]) -> None:
        self.events = events
        self.opened = threading.Event()

    def __call__(self, received: Any) -> Reply:
        self.opened.clear()
        chunks = self.events(received.json)

        def gated() -> Iterator[bytes]:
            yield from chunks[:3]
            assert self.opened.wait(30), "the client never saw the first events"
            yield from chunks[3:]

        return Reply(headers={"content-type": "text/event-stream"}, chunks=gated())  # type: ignore[arg-type]


CHAT_GATE = Gate(lambda body: openai_stream_chunks(body, ["one", "two", "three", "four"]))
NATIVE_GATE = Gate(lambda body: sse(response_events(body, "resp_gate", [{
    "id": "msg_gate", "type": "message", "status": "completed", "role": "assistant",
    "content": [{"type": "output_text", "text": "one two three", "annotations": [],
                 "logprobs": []}]}])))


def route(name: str, backend: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "match": {"model": name}, "backend": backend, **fields}


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, recorder: Recorder
) -> Iterator[tuple[RunningGateway, Upstreams]]:
    enrich = {"prepend": [{"role": "system", "content": "Answer in French."}]}
    with upstreams() as ups, UpstreamServer(dropping) as first, \
            UpstreamServer(continuing) as second, UpstreamServer(CHAT_GATE) as chat_gate, \
            UpstreamServer(NATIVE_GATE) as native_gate:
        dead = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k",
                "responses": True}
        config = {
            "gateway": {"api_keys": list(KEYS)},
            "plugins": {"openai": None, "anthropic": None, "gemini": None, "enrich": None,
                        "responses_api": None, "pii_guard": {"executor": "thread"}},
            "backends": {
                **backends(ups.urls), "dead": dead,
                "a": {"provider": "openai", "base_url": first.url, "api_key": "k"},
                "b": {"provider": "openai", "base_url": second.url, "api_key": "k"},
                "chat-gate": {"provider": "openai", "base_url": chat_gate.url, "api_key": "k"},
                "native-gate": {"provider": "openai", "base_url": native_gate.url,
                                "api_key": "k", "responses": True},
            },
            "routes": [
                route("enrich-native", "native", policies={"enrich": enrich}),
                route("enrich-claude", "claude", policies={"enrich": enrich}),
                *(route(f"in-{k}", k, policies={"pii_guard": {"request": PII}})
                  for k in ("native", "chat")),
                *(route(f"out-{k}", k, policies={"pii_guard": {"response": PII}})
                  for k in ("native", "chat")),
                route("failover", "dead", failover={"groups": [["claude"]]}),
                route("cont", "a", failover={"groups": [["b"]], "continue_streams": True}),
                route("chat-gate", "chat-gate"),
                route("native-gate", "native-gate"),
                {"name": "ab", "match": {"model": "ab"}, "split": {
                    "cohort": "header:x-user-id",
                    "targets": [{"backend": "chat", "weight": 50},
                                {"backend": "gemini", "weight": 50}]}},
            ],
        }
        path = write_config(tmp_path_factory.mktemp("pol"), json.dumps(config))
        with run_gateway(path, extra_plugins=(("recorder", recorder),)) as gw:
            yield gw, ups


gw, ups, client = shared_fixtures()


@pytest.mark.parametrize("kind", ["native", "claude"])
def test_enrichment_prepends_a_system_message_item(client, ups, kind):
    response = client.responses.create(model=f"enrich-{kind}", input="bonjour")
    sent = ups.of(kind).requests[-1].json
    if kind == "native":
        assert sent["input"][0] == {"type": "message", "role": "system",
                                    "content": "Answer in French."}
    else:
        assert "Answer in French." in json.dumps(sent["system"])
    # The stored input is the client's own: the next turn is enriched again, not twice.
    items = client.responses.input_items.list(response.id).data
    if kind == "claude":
        assert [i.content[0].text for i in items] == ["bonjour"]
        client.responses.create(model="enrich-claude", previous_response_id=response.id,
                                input="encore")
        assert json.dumps(ups.claude.requests[-1].json).count("Answer in French.") == 1


@pytest.mark.parametrize("kind", ["native", "chat"])
def test_pii_in_the_input_is_masked(client, ups, kind):
    response = client.responses.create(model=f"in-{kind}", input=f"mail {EMAIL} please")
    assert EMAIL not in json.dumps(ups.of(kind).requests[-1].json)
    assert response.output_text == "echo: mail <EMAIL_ADDRESS> please"


@pytest.mark.parametrize("kind", ["native", "chat"])
def test_pii_in_the_output_is_masked_whole_and_streamed(gw, kind):
    body = {"model": f"out-{kind}", "input": f"mail {EMAIL} please"}
    expected = "echo: mail <EMAIL_ADDRESS> please"
    assert output_text(create(gw, body)) == expected
    events = stream(gw, body)
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == expected
    done = [e for e in events if e["type"] == "response.output_text.done"]
    assert [e["text"] for e in done] == [expected]
    final = events[-1]["response"]
    assert output_text(final) == expected
    assert EMAIL not in json.dumps(events)


def test_failover_before_the_first_byte(client, gw):
    response = client.responses.with_raw_response.create(model="failover", input="anyone?")
    assert response.headers["x-modelway-backend"] == "claude"
    events = stream(gw, {"model": "failover", "input": "streamed"})
    assert output_text(events[-1]["response"]) == "echo: streamed"


def test_ab_cohorts_are_sticky(client):
    seen: dict[str, set[str]] = {}
    for user in [f"user-{n}" for n in range(12)]:
        for _ in range(2):
            raw = client.responses.with_raw_response.create(
                model="ab", input="hi", extra_headers={"x-user-id": user}
            )
            seen.setdefault(user, set()).add(raw.headers["x-modelway-backend"])
    assert all(len(backends) == 1 for backends in seen.values())
    assert set().union(*seen.values()) == {"chat", "gemini"}


def test_access_log_has_tokens_and_ttft(client, recorder):
    with client.responses.stream(model="in-chat", input="count me") as events:
        events.get_final_response()
    record = next(r for r in reversed(recorder.records) if r["model"] == "in-chat")
    assert record["api"] == "openai.responses" and record["stream"] is True
    assert (record["prompt_tokens"], record["completion_tokens"]) == (20, 8)
    assert record["ttft_ms"] is not None


def test_continuation_mid_stream(gw):
    events = stream(gw, {"model": "cont", "input": "go"})
    assert [e["type"] for e in events].count("response.created") == 1
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert output_text(events[-1]["response"]) == "alpha beta gamma delta"


@pytest.mark.parametrize(("model", "gate"), [("chat-gate", CHAT_GATE),
                                             ("native-gate", NATIVE_GATE)])
def test_first_events_arrive_while_the_upstream_still_generates(gw, model, gate):
    body = json.dumps({"model": model, "input": "go", "stream": True}).encode()
    request = urllib.request.Request(gw.base_url + "/responses", body, headers={
        "content-type": "application/json", "authorization": f"Bearer {KEYS[0]}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        first = answer.readline() + answer.readline()
        assert first.startswith(b"event: response.created\n")
        gate.opened.set()  # only now does the upstream send the rest
        rest = answer.read()
    assert b"response.completed" in rest
