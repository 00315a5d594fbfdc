"""Same-API fidelity, Gemini: the google-genai SDK sends one feature-rich generateContent
request (thinking config, thought parts with signatures, safety settings, topK, logprobs,
Google Search, a cached content, an unknown field) directly to a recording upstream and through
the gateway to Gemini and Vertex Gemini backends, streamed and not. The upstream must record
the same body and the client must read the same answer (thoughts, thought signatures, safety
ratings, grounding and citation metadata, log-probabilities, unknown fields), except what the
test names: the credentials, Vertex's URL, and the enrich policy's prepended instruction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import types

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import UpstreamServer
from tests.recording import (
    Scripted,
    assert_headers_passed,
    assert_same,
    body_json,
    post,
    sse_data,
    sse_events,
)

GATEWAY_KEY = "AIza-fidelity-gateway"
VERTEX_TOKEN = "ya29.fidelity-gemini"
CLIENT_KEY = "sk-client-gemini-fidelity"
PREPENDED = "You answer for the fidelity team."
THOUGHT_SIGNATURE = "Q2lZQnNpZy1vcGFxdWU="

HISTORY = [
    types.Content(role="user", parts=[types.Part(text="What colour is the sky?")]),
    types.Content(
        role="model",
        parts=[
            types.Part(text="Looking.", thought=True),
            types.Part(
                function_call=types.FunctionCall(name="lookup", args={"q": "sky"}),
                thought_signature=THOUGHT_SIGNATURE.encode(),
            ),
        ],
    ),
    types.Content(
        role="user",
        parts=[
            types.Part(
                function_response=types.FunctionResponse(name="lookup", response={"r": "blue"})
            )
        ],
    ),
]
CONFIG = types.GenerateContentConfig(
    system_instruction="Be terse.",
    temperature=0.4,
    top_p=0.9,
    top_k=20,
    max_output_tokens=1024,
    stop_sequences=["###"],
    seed=7,
    response_logprobs=True,
    logprobs=2,
    thinking_config=types.ThinkingConfig(thinking_budget=512, include_thoughts=True),
    safety_settings=[
        types.SafetySetting(
            category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
            threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
        )
    ],
    tools=[
        types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name="lookup",
                    description="Look a fact up",
                    parameters=types.Schema(
                        type=types.Type.OBJECT, properties={"q": types.Schema(type="STRING")}
                    ),
                )
            ]
        ),
        types.Tool(google_search=types.GoogleSearch()),
    ],
    cached_content="cachedContents/abc123",
    labels={"team": "fidelity"},
)
EXTRA_BODY = {"futureField": {"nested": [1, 2]}}

ANSWER: dict[str, Any] = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "The tool said blue.", "thought": True},
                    {"text": "Blue.", "thoughtSignature": THOUGHT_SIGNATURE},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
            ],
            "citationMetadata": {
                "citations": [{"startIndex": 0, "endIndex": 5, "uri": "https://example.org/sky"}]
            },
            "groundingMetadata": {
                "webSearchQueries": ["sky colour"],
                "groundingChunks": [{"web": {"uri": "https://example.org/sky", "title": "Sky"}}],
            },
            "avgLogprobs": -0.12,
            "logprobsResult": {
                "topCandidates": [{"candidates": [{"token": "Blue", "logProbability": -0.1}]}],
                "chosenCandidates": [{"token": "Blue", "logProbability": -0.1}],
            },
            "futureCandidateField": True,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 40,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 12,
        "cachedContentTokenCount": 32,
        "totalTokenCount": 55,
    },
    "modelVersion": "gemini-2.5-pro-001",
    "responseId": "resp-fidelity",
}


def chunks() -> list[dict[str, Any]]:
    """ANSWER as two stream chunks: the thought, then the text with the rest."""
    candidate = ANSWER["candidates"][0]
    thought = {"content": {"role": "model", "parts": [candidate["content"]["parts"][0]]}}
    rest = {**candidate, "content": {"role": "model", "parts": [candidate["content"]["parts"][1]]}}
    return [
        {"candidates": [{**thought, "index": 0}], "modelVersion": ANSWER["modelVersion"]},
        {**ANSWER, "candidates": [rest]},
    ]


UPSTREAM_HEADERS = {"x-ratelimit-remaining-requests": "9", "retry-after": "2"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    behavior = Scripted(ANSWER, sse_events(chunks(), named=False), UPSTREAM_HEADERS)
    with UpstreamServer(behavior) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "backends": {
            "gemini": {"provider": "gemini", "base_url": upstream.origin, "api_key": GATEWAY_KEY},
            "vertex": {
                "provider": "vertex",
                "base_url": upstream.origin,
                "project": "proj",
                "location": "us-central1",
                "access_token": VERTEX_TOKEN,
                "model": "gemini-2.5-pro",
            },
        },
        "routes": [
            {"name": "plain", "match": {"model": "gemini-2.5-pro"}, "backend": "gemini"},
            {"name": "vertex", "match": {"model": "gemini-on-vertex"}, "backend": "vertex"},
            {
                "name": "enriched",
                "match": {"model": "gemini-enriched"},
                "backend": "gemini",
                "policies": {"enrich": {"prepend": [{"role": "system", "content": PREPENDED}]}},
            },
        ],
    }
    with run_gateway(config) as gw:
        yield gw


def sdk(owner: RunningGateway, base_url: str, key: str) -> genai.Client:
    options = types.HttpOptions(base_url=base_url, extra_body=EXTRA_BODY)
    return owner.resource(
        ("genai", base_url), lambda: genai.Client(api_key=key, http_options=options)
    )


def ask(client: genai.Client, model: str, stream: bool) -> Any:
    """The SDK's reading of the answer (every chunk of a stream)."""
    if stream:
        pieces = client.models.generate_content_stream(model=model, contents=HISTORY, config=CONFIG)
        return [p.model_dump(exclude={"sdk_http_response"}) for p in pieces]
    answer = client.models.generate_content(model=model, contents=HISTORY, config=CONFIG)
    return answer.model_dump(exclude={"sdk_http_response"})


def both(gateway: RunningGateway, upstream: UpstreamServer, model: str, stream: bool) -> Any:
    upstream.received.clear()
    direct = ask(sdk(gateway, upstream.origin, GATEWAY_KEY), model, stream)
    direct_sent = upstream.received[0]
    upstream.received.clear()
    through = ask(sdk(gateway, gateway.url, CLIENT_KEY), model, stream)
    return (direct_sent, upstream.received[0]), (direct, through)


def raw_answer(origin: str, sent: Any, key: str) -> Any:
    """The raw answer to the recorded request, sent again to `origin` as it was."""
    status, data = post(origin, sent.path, sent.body, {**_feature(sent), "x-goog-api-key": key})
    assert status == 200
    return sse_data(data) if "alt=sse" in sent.path else [body_json_bytes(data)]


def _feature(sent: Any) -> dict[str, str]:
    return {k: v for k, v in sent.headers.items() if k in ("content-type", "x-goog-api-client")}


def body_json_bytes(data: bytes) -> Any:
    return json.loads(data)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_gemini_backend_receives_and_answers_the_same(gateway, upstream, stream):
    (sent, got), (direct, through) = both(gateway, upstream, "gemini-2.5-pro", stream)
    assert got.path == sent.path
    assert_same(body_json(sent), body_json(got))
    assert body_json(got)["futureField"] == EXTRA_BODY["futureField"]
    assert_headers_passed("gemini", sent, got)
    assert got.headers["x-goog-api-key"] == GATEWAY_KEY and CLIENT_KEY not in str(got.headers)
    assert_same(direct, through)
    raw = raw_answer(gateway.url, sent, CLIENT_KEY)
    assert_same(raw_answer(upstream.origin, sent, GATEWAY_KEY), raw)  # every field, unknown too


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_vertex_gemini_receives_the_same_body(gateway, upstream, stream):
    (sent, got), (direct, through) = both(gateway, upstream, "gemini-on-vertex", stream)
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    prefix = "/v1/projects/proj/locations/us-central1/publishers/google/models"
    assert got.path == f"{prefix}/gemini-2.5-pro:{method}"
    assert_same(body_json(sent), body_json(got))
    assert got.headers["authorization"] == f"Bearer {VERTEX_TOKEN}"
    assert_same(direct, through)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_enrichment_is_the_only_change(gateway, upstream, stream):
    (sent, got), (direct, through) = both(gateway, upstream, "gemini-enriched", stream)
    instruction = body_json(sent)["systemInstruction"]
    changed = {**instruction, "parts": [{"text": PREPENDED}, *instruction["parts"]]}
    assert_same(body_json(sent), body_json(got), {("systemInstruction",): changed})
    assert_same(direct, through)
