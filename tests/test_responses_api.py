"""The Responses API through a real gateway, with the official `openai` SDK, for every
backend kind: an OpenAI backend that has the Responses API (same-API lane), a chat-only
OpenAI-compatible server, Anthropic and Gemini (translated). Every answer and event is
validated with the SDK's own models, and content is compared: texts, tool calls, event
order, the streamed answer against the non-streamed one, usage, stored conversations."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from modelway.testing.gateway import RunningGateway
from tests.responses_fixtures import WEATHER, kinds, sdk_response, sse_events
from tests.responses_setup import (
    KEYS,
    KINDS,
    MODELS,
    Upstreams,
    gateway_for,
    shared_fixtures,
    upstreams,
)

Json = dict[str, Any]
REASONING = {"native": 3, "chat": 3, "claude": 0, "gemini": 3}
TEXT_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added",
    "response.content_part.added", "response.output_text.delta",
    "response.output_text.done", "response.content_part.done",
    "response.output_item.done", "response.completed",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, Upstreams]]:
    with upstreams() as ups, gateway_for(tmp_path_factory.mktemp("resp"), ups.urls) as gw:
        yield gw, ups


gw, ups, client = shared_fixtures()


def raw_post(gw: RunningGateway, body: Json, key: str = KEYS[0]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        gw.base_url + "/responses", json.dumps(body).encode(),
        {"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def create(gw: RunningGateway, body: Json) -> Json:
    status, data = raw_post(gw, body)
    assert status == 200, data
    response = json.loads(data)
    sdk_response(response)
    return response


def stream(gw: RunningGateway, body: Json) -> list[Json]:
    status, data = raw_post(gw, {**body, "stream": True})
    assert status == 200, data
    return sse_events(data)


def summary(response: Json) -> list[Json]:
    """The output without ids (every response has its own)."""
    out = []
    for item in response["output"]:
        if item["type"] == "message":
            out.append({"message": [p.get("text") for p in item["content"]]})
        elif item["type"] == "function_call":
            out.append({"call": item["name"], "arguments": json.loads(item["arguments"])})
        else:
            out.append({item["type"]: [s["text"] for s in item.get("summary") or ()]})
    return out


def output_text(response: Json) -> str:
    return "".join(p.get("text", "") for item in response["output"] if item["type"] == "message"
                   for p in item["content"])


def usage_of(response: Json) -> tuple[int, int, int, int]:
    usage = response["usage"]
    return (usage["input_tokens"], usage["input_tokens_details"]["cached_tokens"],
            usage["output_tokens"], usage["output_tokens_details"]["reasoning_tokens"])


@pytest.mark.parametrize("kind", KINDS)
def test_create_answers_with_a_valid_response(client, kind):
    raw = client.responses.with_raw_response.create(
        model=MODELS[kind], input="hello there", instructions="Be brief."
    )
    response = sdk_response(json.loads(raw.text))
    assert response.status == "completed"
    assert response.output_text == "echo: hello there"
    assert response.id.startswith("resp_")
    assert raw.headers["x-modelway-backend"] == kind
    data = json.loads(raw.text)
    assert usage_of(data) == (20, 5, 8, REASONING[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_stream_events_in_order_and_equal_to_the_answer(gw, kind):
    body = {"model": MODELS[kind], "input": "tell me something nice"}
    events = stream(gw, body)
    answer = create(gw, body)
    assert [k for i, k in enumerate(kinds(events)) if i == 0 or k != kinds(events)[i - 1]] \
        == TEXT_EVENTS
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    sdk_response(final)
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == output_text(final) == output_text(answer) == "echo: tell me something nice"
    assert summary(final) == summary(answer)
    assert usage_of(final) == usage_of(answer)
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == final["output"]


@pytest.mark.parametrize("kind", KINDS)
def test_sdk_stream_helper(client, kind):
    with client.responses.stream(model=MODELS[kind], input="stream this") as events:
        seen = [event.type for event in events]
        final = events.get_final_response()
    assert seen[0] == "response.created" and seen[-1] == "response.completed"
    assert final.output_text == "echo: stream this"


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", KINDS)
def test_function_call_output_round_trip(gw, kind, streamed):
    first_body = {"model": MODELS[kind], "input": [{"role": "user", "content": "weather?"}],
                  "tools": [WEATHER]}
    first = stream(gw, first_body)[-1]["response"] if streamed else create(gw, first_body)
    calls = [item for item in first["output"] if item["type"] == "function_call"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == \
        [("get_weather", {"city": "Paris"})]
    follow = {**first_body, "input": [*first_body["input"], *first["output"], {
        "type": "function_call_output", "call_id": calls[0]["call_id"],
        "output": "It is sunny in Paris."}]}
    second = stream(gw, follow)[-1]["response"] if streamed else create(gw, follow)
    assert output_text(second) == "The tool said: It is sunny in Paris."


@pytest.mark.parametrize("kind", KINDS)
def test_previous_response_id_chain(client, ups, kind):
    model = MODELS[kind]
    first = client.responses.create(model=model, input="my name is Ada", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(model=model, previous_response_id=first.id, tools=[WEATHER],
                                     input=[{"type": "function_call_output",
                                             "call_id": call.call_id, "output": "rainy"}])
    assert second.output_text == "The tool said: rainy"
    third = client.responses.create(model=model, previous_response_id=second.id,
                                    input="what is my name?")
    assert third.output_text == "echo: what is my name?"
    sent = json.dumps(ups.of(kind).requests[-1].json)
    if kind == "native":  # the backend keeps the conversation: the id goes there
        assert ups.native.requests[-1].json["previous_response_id"] == second.id
    else:  # the gateway kept it: the whole conversation goes to the backend
        assert "my name is Ada" in sent and "rainy" in sent and "The tool said" in sent
    with client.responses.stream(model=model, previous_response_id=third.id,
                                 input="again") as events:
        fourth = events.get_final_response()
    fifth = client.responses.create(model=model, previous_response_id=fourth.id, input="last")
    assert fifth.output_text == "echo: last"


@pytest.mark.parametrize("kind", KINDS)
def test_store_false_keeps_nothing(client, kind):
    response = client.responses.create(model=MODELS[kind], input="forget me", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODELS[kind], input="x", previous_response_id=response.id)
    assert error.value.code == "previous_response_not_found"


@pytest.mark.parametrize("kind", KINDS)
def test_get_input_items_and_delete(client, ups, kind):
    response = client.responses.create(
        model=MODELS[kind],
        input=[{"role": "user", "content": [{"type": "input_text", "text": "first part"}]}],
    )
    again = client.responses.retrieve(response.id)
    assert again.id == response.id and again.output_text == response.output_text
    items = client.responses.input_items.list(response.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == \
        [("message", "user", "first part")]
    if kind == "native":
        assert ups.native.requests[-1].method == "GET"  # asked of the backend that keeps it
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.parametrize("kind", ["chat", "claude"])
def test_stream_replay_equals_the_stored_response(gw, client, kind):
    response = create(gw, {"model": MODELS[kind], "input": "replay me"})
    request = urllib.request.Request(
        f"{gw.base_url}/responses/{response['id']}?stream=true",
        headers={"authorization": f"Bearer {KEYS[0]}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        events = sse_events(answer.read())
    assert kinds(events) == TEXT_EVENTS
    assert events[-1]["response"] == response
    with client.responses.retrieve(response["id"], stream=True) as replayed:
        assert [e.type for e in replayed][-1] == "response.completed"


@pytest.mark.parametrize("kind", KINDS)
def test_another_keys_response_is_not_found(gw, client, kind):
    response = client.responses.create(model=MODELS[kind], input="mine")
    with openai.OpenAI(base_url=gw.base_url, api_key=KEYS[1], max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(response.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(response.id)
        with pytest.raises(openai.BadRequestError) as error:
            other.responses.create(model=MODELS[kind], input="x",
                                   previous_response_id=response.id)
    assert error.value.code == "previous_response_not_found"
    assert client.responses.retrieve(response.id).id == response.id
