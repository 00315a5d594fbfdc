"""Policies on the native (same-API) lanes of Anthropic and Gemini, with their official SDKs:
the PII guard masks the client's body before it goes upstream and masks answers, whole and
streamed with the PII cut across events, and rejects in the client's own error shape without
sending anything; enrichment's prepend, append, defaults and overrides land in each API's own
fields; the webhook guard rewrites and rejects, the moderation guard rejects, each in the
client's own error shape and before anything goes upstream. Everything but the policies'
edits passes as it was (checked with tests/recording.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from tests.recording import assert_same, body_json, sse_events

CARD, EMAIL, PHONE = "4111 1111 1111 1111", "john.doe@example.com", "(212) 555-0123"
SSN = "219-09-9999"
SPLIT = [
    "Sure. Write to jo",
    "hn.doe@exa",
    "mple.com or call (212",
    ") 555-01",
    "23. Card: 4111 11",
    "11 1111 11",
    "11, SSN 219-",
    "09-9999. Bye!",
]
MASKED = (
    "Sure. Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>. Card: <CREDIT_CARD>, SSN <US_SSN>. Bye!"
)
RAW = [CARD, EMAIL, PHONE, SSN, "4111", "john.doe", "555-0123"]
PII = {
    "request": {"entities": ["CREDIT_CARD", "EMAIL_ADDRESS"], "actions": {"US_SSN": "reject"}},
    "response": {"entities": ["CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN"]},
}
ENRICH = {
    "prepend": [{"role": "system", "content": "Policy first."}],
    "append": [{"role": "user", "content": "Policy last."}],
    "defaults": {"top_k": 9},
    "overrides": {"max_tokens": 77},
}


def anthropic_message(text: str) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 9},
    }


def anthropic_events() -> list[bytes]:
    start = {**anthropic_message(""), "content": [], "stop_reason": None}
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        for t in SPLIT
    ]
    return sse_events(
        [
            {"type": "message_start", "message": start},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            *deltas,
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 9},
            },
            {"type": "message_stop"},
        ]
    )


def gemini_chunk(text: str, last: bool = False) -> dict[str, Any]:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    if last:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "modelVersion": "gemini-x",
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14},
    }


def behave(received: Received) -> Reply:
    streams = "alt=sse" in received.path or b'"stream": true' in received.body
    if received.path.startswith("/v1/messages"):
        if streams or body_json(received).get("stream"):
            return Reply.sse(anthropic_events())
        return Reply.json(anthropic_message("".join(SPLIT)))
    if streams:
        pieces = [gemini_chunk(t, i == len(SPLIT) - 1) for i, t in enumerate(SPLIT)]
        return Reply.sse(sse_events(pieces, named=False))
    return Reply.json(gemini_chunk("".join(SPLIT), last=True))


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(behave) as server:
        yield server


def guard(received: Received) -> Reply:
    """The webhook (`/check`: reject "forbidden", rewrite "secret") and an OpenAI moderation
    endpoint (flags "flagme")."""
    if received.path.endswith("/moderations"):
        flagged = b"flagme" in received.body
        result = {"flagged": flagged, "categories": {"violence": flagged}}
        return Reply.json({"id": "modr-1", "model": "omni-moderation-latest", "results": [result]})
    texts = [segment["text"] for segment in body_json(received).get("segments", [])]
    if any("forbidden" in text for text in texts):
        return Reply.json({"action": "reject", "message": "not allowed here", "status": 403})
    if any("secret" in text for text in texts):
        return Reply.json(
            {"action": "modify", "texts": [t.replace("secret", "[x]") for t in texts]}
        )
    return Reply.json({"action": "pass"})


@pytest.fixture(scope="module")
def guard_server() -> Iterator[UpstreamServer]:
    with UpstreamServer(guard) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer, guard_server: UpstreamServer) -> Iterator[RunningGateway]:
    GUARDS = {
        "webhook_guard": {"url": f"{guard_server.origin}/check"},
        "moderation_guard": {"backend": "moderation"},
    }

    def route(name: str, model: str, backend: str, policies: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "match": {"model": model}, "backend": backend, "policies": policies}

    config = {
        "backends": {
            "claude": {
                "provider": "anthropic",
                "base_url": upstream.origin,
                "api_key": "sk-ant-up",
            },
            "gemini": {"provider": "gemini", "base_url": upstream.origin, "api_key": "AIza-up"},
            "moderation": {"provider": "openai", "base_url": guard_server.url, "api_key": "sk-m"},
        },
        "routes": [
            route("claude-pii", "claude-pii", "claude", {"pii_guard": PII}),
            route("claude-enrich", "claude-enrich", "claude", {"enrich": ENRICH}),
            route("gemini-pii", "gemini-pii", "gemini", {"pii_guard": PII}),
            route("gemini-enrich", "gemini-enrich", "gemini", {"enrich": ENRICH}),
            route("claude-guards", "claude-guards", "claude", GUARDS),
            route("gemini-guards", "gemini-guards", "gemini", GUARDS),
        ],
    }
    with run_gateway(config) as gw:
        yield gw


@pytest.fixture
def claude(gateway: RunningGateway) -> anthropic.Anthropic:
    return gateway.closing(anthropic.Anthropic(base_url=gateway.url, api_key="sk-c", max_retries=0))


@pytest.fixture
def gemini(gateway: RunningGateway) -> genai.Client:
    options = types.HttpOptions(base_url=gateway.url, api_version="v1beta")
    return gateway.resource("genai", lambda: genai.Client(api_key="sk-c", http_options=options))


PROMPT = f"Charge {CARD} and mail {EMAIL}."
MASKED_PROMPT = "Charge <CREDIT_CARD> and mail <EMAIL_ADDRESS>."


def no_raw(text: str) -> bool:
    return not [raw for raw in RAW if raw in text]


# ------------------------------------------------------------------------ Anthropic


def ask_claude(client: anthropic.Anthropic, model: str, text: str, **extra: Any) -> Any:
    return client.messages.create(
        model=model,
        max_tokens=50,
        system=f"Customer {EMAIL}",
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
        **extra,
    )


def test_anthropic_native_request_and_answer_are_masked(claude, upstream):
    message = ask_claude(claude, "claude-pii", PROMPT)
    sent = body_json(upstream.last)
    assert sent["system"] == "Customer <EMAIL_ADDRESS>"
    assert sent["messages"][0]["content"][0]["text"] == MASKED_PROMPT
    assert no_raw(upstream.last.body.decode())
    assert message.content[0].text == MASKED


def test_anthropic_native_stream_is_masked_as_it_goes(claude):
    texts = []
    with claude.messages.stream(
        model="claude-pii", max_tokens=50, messages=[{"role": "user", "content": "contact?"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == MASKED == final.content[0].text
    so_far = ""
    for text in texts:
        so_far += text
        assert no_raw(so_far), so_far
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 9


def test_anthropic_native_reject_answers_in_anthropics_shape(claude, upstream):
    upstream.received.clear()
    with pytest.raises(anthropic.BadRequestError) as raised:
        ask_claude(claude, "claude-pii", f"my SSN is {SSN}")
    assert raised.value.body["type"] == "error"
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert upstream.received == []


def test_anthropic_native_enrichment_lands_in_messages_fields(claude, upstream):
    version = {"anthropic-version": "2023-06-01"}  # one with sampling fields (top_k)
    ask_claude(
        claude, "claude-enrich", "hello", extra_body={"future_field": 1}, extra_headers=version
    )
    sent = body_json(upstream.last)
    direct = {
        "model": "claude-enrich",
        "max_tokens": 50,
        "system": "Customer john.doe@example.com",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "future_field": 1,
    }
    system = [{"type": "text", "text": "Policy first."}, {"type": "text", "text": direct["system"]}]
    content = [{"type": "text", "text": "hello"}, {"type": "text", "text": "Policy last."}]
    changes = {
        ("system",): system,
        ("messages", 0, "content"): content,
        ("max_tokens",): 77,
        ("top_k",): 9,
    }
    assert_same(direct, sent, changes)


# ------------------------------------------------------------------------ Gemini


def ask_gemini(client: genai.Client, model: str, text: str) -> Any:
    config = types.GenerateContentConfig(system_instruction=f"Customer {EMAIL}")
    return client.models.generate_content(model=model, contents=text, config=config)


def test_gemini_native_request_and_answer_are_masked(gemini, upstream):
    answer = ask_gemini(gemini, "gemini-pii", PROMPT)
    sent = body_json(upstream.last)
    assert sent["systemInstruction"]["parts"][0]["text"] == "Customer <EMAIL_ADDRESS>"
    assert sent["contents"][0]["parts"][0]["text"] == MASKED_PROMPT
    assert no_raw(upstream.last.body.decode())
    assert answer.text == MASKED


def test_gemini_native_stream_is_masked_as_it_goes(gemini):
    pieces = list(gemini.models.generate_content_stream(model="gemini-pii", contents="contact?"))
    texts = [p.text or "" for p in pieces]
    assert "".join(texts) == MASKED
    so_far = ""
    for text in texts:
        so_far += text
        assert no_raw(so_far), so_far
    assert pieces[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_gemini_native_reject_answers_in_googles_shape(gemini, upstream):
    upstream.received.clear()
    with pytest.raises(genai_errors.ClientError) as raised:
        ask_gemini(gemini, "gemini-pii", f"my SSN is {SSN}")
    assert raised.value.code == 400 and raised.value.status == "INVALID_ARGUMENT"
    assert upstream.received == []


def test_gemini_native_enrichment_lands_in_generate_fields(gemini, upstream):
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=500)
    gemini.models.generate_content(model="gemini-enrich", contents="hello", config=config)
    sent = body_json(upstream.last)
    assert sent["systemInstruction"]["parts"] == [{"text": "Policy first."}, {"text": "Be brief."}]
    last = {"role": "user", "parts": [{"text": "hello"}, {"text": "Policy last."}]}
    assert sent["contents"] == [last]
    assert sent["generationConfig"] == {"maxOutputTokens": 77, "topK": 9}


# ------------------------------------------------------------------------ guards, both APIs


def ask(client: Any, api: str, text: str) -> None:
    if api == "anthropic":
        ask_claude(client, "claude-guards", text)
    else:
        ask_gemini(client, "gemini-guards", text)


@pytest.fixture(params=["anthropic", "gemini"])
def api_client(request, claude, gemini) -> tuple[str, Any]:
    return request.param, claude if request.param == "anthropic" else gemini


def sent_text(received: Received, api: str) -> str:
    body = body_json(received)
    if api == "anthropic":
        return body["messages"][0]["content"][0]["text"]
    return body["contents"][0]["parts"][0]["text"]


def test_the_webhook_guard_rewrites_a_native_request(api_client, upstream):
    api, client = api_client
    ask(client, api, "the secret word")
    assert sent_text(upstream.last, api) == "the [x] word"


def refused(api: str, client: Any, text: str) -> tuple[int, Any]:
    kinds = (anthropic.APIStatusError, genai_errors.APIError)
    with pytest.raises(kinds) as raised:
        ask(client, api, text)
    error: Any = raised.value
    if api == "anthropic":
        return error.status_code, error.body["error"]["type"]
    return error.code, error.status


def test_the_webhook_guard_rejects_in_the_clients_shape(api_client, upstream):
    api, client = api_client
    upstream.received.clear()
    status, kind = refused(api, client, "a forbidden thing")
    assert (status, kind) == (
        403,
        "permission_error" if api == "anthropic" else "PERMISSION_DENIED",
    )
    assert upstream.received == []


def test_the_moderation_guard_rejects_in_the_clients_shape(api_client, upstream):
    api, client = api_client
    upstream.received.clear()
    status, kind = refused(api, client, "please flagme")
    assert (status, kind) == (
        400,
        "invalid_request_error" if api == "anthropic" else "INVALID_ARGUMENT",
    )
    assert upstream.received == []
