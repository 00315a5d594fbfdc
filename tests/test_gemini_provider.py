"""The `gemini` provider: translation to and from Gemini's generateContent wire format
(unit tests against fixtures shaped as in the Gemini API reference), and round trips with
the official `openai` SDK through a real gateway to an upstream that speaks Gemini's format.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from modelway.canonical import CanonicalRequest, Operation
from modelway.config import BackendConfig
from modelway.context import ClientInfo, RequestContext
from modelway.errors import GatewayError
from modelway.plugins.providers.gemini import GeminiOptions, GeminiProvider
from modelway.plugins.providers.gemini.errors import error_from_google
from modelway.plugins.providers.gemini.request import to_gemini_request
from modelway.plugins.providers.gemini.response import (
    ResponseMeta,
    finish_reason,
    from_gemini_response,
)
from modelway.plugins.providers.gemini.stream import GeminiStreamDecoder
from modelway.testing.fake_gemini import RESPONSE_ID, gemini_behavior, google_error
from modelway.testing.gateway import run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from tests.openai_answers import flatten, reassemble

KEY = "AIza-gateway-key-5c1e"
CLIENT_KEY = "sk-client-93ab"
META = ResponseMeta("req-1", "gemini-2.5-flash", 1700000000)
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    + "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


# ------------------------------------------------------------------------- requests


def test_request_translation_covers_every_field():
    body = {
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this, and the weather there?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a/b.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        "extra_content": {"google": {"thought_signature": "c2lnLTE="}},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
            {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 21}'},
            {"role": "user", "content": "Thanks!"},
        ],
        "temperature": 0.3,
        "top_p": 0.9,
        "max_completion_tokens": 256,
        "max_tokens": 999,
        "stop": "END",
        "n": 2,
        "seed": 7,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True},
        },
        "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "get_time"}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "stream": True,
        "user": "u-1",
    }
    assert to_gemini_request(body) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is this, and the weather there?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {
                        "fileData": {
                            "mimeType": "image/jpeg",
                            "fileUri": "https://example.com/a/b.jpg",
                        }
                    },
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnLTE=",
                    },
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}},
                    {"text": "Thanks!"},
                ],
            },
        ],
        "generationConfig": {
            "temperature": 0.3,
            "topP": 0.9,
            "candidateCount": 2,
            "seed": 7,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                    },
                    {"name": "get_time"},
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
    }


def test_consecutive_roles_merge_and_minimal_request():
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": [{"type": "text", "text": "d"}]},
        ],
        "max_tokens": 5,
        "stop": ["x", "y"],
    }
    assert to_gemini_request(body) == {
        "contents": [
            {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
            {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
        ],
        "generationConfig": {"maxOutputTokens": 5, "stopSequences": ["x", "y"]},
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "f"}},
            {"mode": "ANY", "allowedFunctionNames": ["f"]},
        ),
    ],
)
def test_tool_choice(choice, config):
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": choice,
    }
    assert to_gemini_request(body)["toolConfig"] == {"functionCallingConfig": config}


def test_json_mode_and_data_url_forms():
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:text/plain;base64,aGkgdGhlcmU="},
                    },
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}},
                    {"type": "image_url", "image_url": {"url": "gs://bucket/no-extension"}},
                ],
            }
        ],
        "response_format": {"type": "json_object"},
    }
    out = to_gemini_request(body)
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "text/plain", "data": "aGkgdGhlcmU="}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        {"fileData": {"fileUri": "gs://bucket/no-extension"}},
    ]
    assert out["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", {"output": [1, 2]}),
        ("plain words", {"output": "plain words"}),
        ("NaN", {"output": "NaN"}),
        ([{"type": "text", "text": '{"b": '}, {"type": "text", "text": "2}"}], {"b": 2}),
    ],
)
def test_tool_result_becomes_an_object(content, response):
    body = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": content},
        ]
    }
    part = to_gemini_request(body)["contents"][1]["parts"][0]
    assert part == {"functionResponse": {"name": "f", "response": response}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]},
            "tools[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0]",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"},
            "tool_choice",
        ),
    ],
)
def test_untranslatable_requests_are_400(body, param):
    with pytest.raises(GatewayError) as caught:
        to_gemini_request(body)
    assert caught.value.status == 400
    assert caught.value.param == param


# ------------------------------------------------------------------------- answers

# A generateContent answer as the API reference shows it (text, thinking usage, cache).
TEXT_RESPONSE = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "thinking...", "thought": True},
                    {"text": "Hello"},
                    {"text": " there."},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
            ],
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 120,
        "candidatesTokenCount": 50,
        "thoughtsTokenCount": 30,
        "totalTokenCount": 210,
        "cachedContentTokenCount": 40,
        "toolUsePromptTokenCount": 10,
    },
    "modelVersion": "gemini-2.5-flash-001",
    "responseId": "mAitaKXQJ4aznvgP",
}

CALL_RESPONSE = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnLTE=",
                    },
                    {"functionCall": {"id": "fc-9", "name": "get_time", "args": {}}},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "r2",
}


def test_text_answer_and_usage():
    answer = from_gemini_response(TEXT_RESPONSE, META)
    assert answer == {
        "id": "chatcmpl-mAitaKXQJ4aznvgP",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gemini-2.5-flash-001",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello there.",
                    "reasoning_content": "thinking...",
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 130,
            "completion_tokens": 80,
            "total_tokens": 210,
            "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 30},
        },
    }


def test_function_call_answer():
    answer = from_gemini_response(CALL_RESPONSE, META)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "thinking_blocks": [
            {"type": "thinking", "thinking": "", "signature": "gemini:call:0:c2lnLTE="}
        ],
        "tool_calls": [
            {
                "id": "call_r2_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                "extra_content": {"google": {"thought_signature": "c2lnLTE="}},
            },
            {
                "id": "fc-9",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    }


def test_signature_round_trips_to_the_next_request():
    answer = from_gemini_response(CALL_RESPONSE, META)
    message = answer["choices"][0]["message"]
    request = to_gemini_request({"messages": [{"role": "user", "content": "q"}, message]})
    signed = CALL_RESPONSE["candidates"][0]["content"]["parts"][0]
    assert request["contents"][1]["parts"] == [
        signed,
        {"functionCall": {"name": "get_time", "args": {}}},
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(reason, expected):
    assert finish_reason(reason, False) == expected


def test_tool_calls_win_over_stop_but_not_over_length():
    assert finish_reason("STOP", True) == "tool_calls"
    assert finish_reason("MAX_TOKENS", True) == "length"


def test_blocked_prompt_is_a_content_filter_answer():
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
    }
    answer = from_gemini_response(blocked, META)
    assert answer["id"] == "chatcmpl-req-1"
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None},
            "finish_reason": "content_filter",
            "logprobs": None,
        }
    ]
    assert answer["usage"]["prompt_tokens"] == 8
    with pytest.raises(GatewayError) as caught:
        from_gemini_response({"candidates": []}, META)
    assert caught.value.status == 502


def test_several_candidates_become_several_choices():
    two = {
        "candidates": [
            {
                "content": {"parts": [{"text": "A"}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            },
            {
                "content": {"parts": [{"text": "B"}], "role": "model"},
                "finishReason": "MAX_TOKENS",
                "index": 1,
            },
        ]
    }
    choices = from_gemini_response(two, META)["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]


# ------------------------------------------------------------------------- streams

STREAM_EVENTS = [
    {
        "candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1, "totalTokenCount": 10},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "s1",
    },
    {
        "candidates": [{"content": {"parts": [{"text": "lo"}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "s1",
    },
    {
        "candidates": [
            {
                "content": {
                    "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
                    "role": "model",
                },
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 6, "totalTokenCount": 15},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "s1",
    },
    {
        "candidates": [
            {
                "content": {"parts": [{"text": ""}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 9,
            "candidatesTokenCount": 6,
            "thoughtsTokenCount": 2,
            "totalTokenCount": 17,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "s1",
    },
]
STREAM_BYTES = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in STREAM_EVENTS)


def _chunk(choices, **extra):
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gemini-2.5-flash",
        "choices": choices,
        **extra,
    }


def _delta(delta, finish=None):
    return _chunk([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}])


def test_stream_chunks_in_order():
    decoder = GeminiStreamDecoder(META)
    chunks = decoder.feed(STREAM_BYTES) + decoder.close()
    call = {
        "index": 0,
        "id": "call_s1_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    assert chunks == [
        _delta({"role": "assistant", "content": ""}),
        _delta({"content": "Hel"}),
        _delta({"content": "lo"}),
        _delta({"tool_calls": [call]}),
        _delta({}, "tool_calls"),
        _chunk(
            [],
            usage={
                "prompt_tokens": 9,
                "completion_tokens": 8,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        ),
    ]


def test_stream_decoding_does_not_depend_on_how_bytes_are_split():
    whole = GeminiStreamDecoder(META)
    expected = whole.feed(STREAM_BYTES) + whole.close()
    for cut in range(1, len(STREAM_BYTES)):
        decoder = GeminiStreamDecoder(META)
        got = decoder.feed(STREAM_BYTES[:cut]) + decoder.feed(STREAM_BYTES[cut:]) + decoder.close()
        assert got == expected, cut


def test_reassembled_stream_equals_merged_answer():
    decoder = GeminiStreamDecoder(META)
    chunks = decoder.feed(STREAM_BYTES) + decoder.close()
    merged = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "Hello"},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                    ],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": STREAM_EVENTS[-1]["usageMetadata"],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "s1",
    }
    answer = from_gemini_response(merged, META)
    message = answer["choices"][0]["message"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    calls = [
        t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert text == message["content"]
    assert [{k: v for k, v in t.items() if k != "index"} for t in calls] == message["tool_calls"]
    assert chunks[-2]["choices"][0]["finish_reason"] == answer["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == answer["usage"]


def event_bytes(*events: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)


def test_stream_error_event_is_an_error_chunk_in_order():
    overloaded = {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    decoder = GeminiStreamDecoder(META)
    chunks = decoder.feed(event_bytes(STREAM_EVENTS[0], overloaded, STREAM_EVENTS[1]))
    assert [c.get("choices", [{}])[0].get("delta") for c in chunks[:2]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
    ]
    assert chunks[2:] == [
        {
            "error": {
                "message": "The model is overloaded.",
                "type": "server_error",
                "code": "unavailable",
                "status": 503,
            }
        }
    ]
    assert decoder.feed(event_bytes(STREAM_EVENTS[2])) == []
    assert decoder.close() == []


@pytest.mark.parametrize(
    "data",
    [b"", event_bytes(*STREAM_EVENTS[:3]), b"data: not json\n\n", b'data: ["a", "b"]\n\n'],
)
def test_truncated_or_garbled_stream_ends_with_an_error_chunk(data):
    decoder = GeminiStreamDecoder(META)
    chunks = decoder.feed(data) + decoder.close()
    assert "error" in chunks[-1]
    assert chunks[-1]["error"]["status"] == 502
    assert chunks[-1]["error"]["code"] in ("upstream_stream_truncated", "upstream_invalid_stream")
    assert [c for c in chunks if "usage" in c] == []


def test_stream_blocked_prompt():
    event = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
    }
    decoder = GeminiStreamDecoder(META)
    chunks = decoder.feed(b"data: " + json.dumps(event).encode() + b"\n\n") + decoder.close()
    assert [c["choices"][0]["finish_reason"] if c["choices"] else "usage" for c in chunks] == [
        None,
        "content_filter",
        "usage",
    ]


# ------------------------------------------------------------------------- errors

RATE_LIMITED = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36.5s"}],
    }
}
BAD_KEY = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    }
}


def test_google_error_keeps_status_and_retry_delay():
    error = error_from_google(429, RATE_LIMITED)
    assert (error.status, error.code, error.message) == (
        429,
        "resource_exhausted",
        "You exceeded your current quota.",
    )
    assert error.headers == {"retry-after": "37"}
    listed = error_from_google(
        500, [{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}]
    )
    assert (listed.status, listed.type, listed.code) == (500, "server_error", "internal")
    assert error_from_google(502, b"<html>").status == 502


def provider(**backend: Any) -> GeminiProvider:
    config = BackendConfig(provider="gemini", **backend)
    return GeminiProvider(config, GeminiOptions.model_validate(config.options))


def context(api_key: str | None = None) -> RequestContext:
    return RequestContext(
        id="req-9",
        method="POST",
        path="/v1/chat/completions",
        host="gw",
        headers={},
        client=ClientInfo("127.0.0.1", "anon", api_key),
    )


def test_bad_gateway_key_is_a_502_without_the_key():
    gemini = provider(api_key=KEY)
    for status, body in (
        (400, BAD_KEY),
        (401, {}),
        (403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied"}}),
    ):
        error = gemini.parse_error(status, {}, json.dumps(body).encode())
        assert (error.status, error.code) == (502, "upstream_auth_failed")
        assert KEY not in error.message
    ordinary = gemini.parse_error(
        400,
        {},
        json.dumps(
            {"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}
        ).encode(),
    )
    assert (ordinary.status, ordinary.code) == (400, "invalid_argument")
    header_wins = gemini.parse_error(429, {"retry-after": "5"}, json.dumps(RATE_LIMITED).encode())
    assert header_wins.headers == {}


def test_build_request_url_headers_and_body():
    gemini = provider(
        api_key=KEY, base_url="https://example.test/", api_version="v1", headers={"x-extra": "1"}
    )
    request = CanonicalRequest(
        Operation.CHAT,
        "models/gemini-2.5-pro",
        {"model": "models/gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]},
    )
    wire = gemini.build_request(context(), request)
    assert wire.url == "https://example.test/v1/models/gemini-2.5-pro:generateContent"
    assert wire.headers == {
        "content-type": "application/json",
        "x-extra": "1",
        "x-goog-api-key": KEY,
    }
    assert json.loads(wire.body) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    request.stream = True
    streamed = provider(api_key=KEY).build_request(context(), request)
    assert streamed.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro"
        ":streamGenerateContent?alt=sse"
    )
    passthrough = provider(auth="passthrough").build_request(context(CLIENT_KEY), request)
    assert passthrough.headers["x-goog-api-key"] == CLIENT_KEY
    embeddings = CanonicalRequest(Operation.EMBEDDINGS, "m", {"model": "m", "input": "x"})
    with pytest.raises(GatewayError):
        gemini.build_request(context(), embeddings)


# ------------------------------------------------------------------------- through the gateway


def key_check(received: Received) -> Reply | None:
    if received.headers.get("x-goog-api-key") == KEY and "authorization" not in received.headers:
        return None
    return Reply(status=400, body=json.dumps(BAD_KEY).encode())


@pytest.fixture
def gemini_upstream():
    with UpstreamServer(gemini_behavior("/v1beta/models/", key_check)) as server:
        yield server


@pytest.fixture
def gateway(tmp_path, gemini_upstream):
    base = f"http://127.0.0.1:{gemini_upstream.port}"
    config = write_config(
        tmp_path,
        f"""
        plugins: [gemini]
        backends:
          g: {{provider: gemini, base_url: "{base}", api_key: {KEY}}}
          wrong: {{provider: gemini, base_url: "{base}", api_key: AIza-wrong}}
        routes:
          - {{match: {{model: "bad-*"}}, backend: wrong}}
          - {{match: {{model: "gemini-*"}}, backend: g}}
    """,
    )
    with run_gateway(config) as gw:
        yield gw


def client_for(gw) -> openai.OpenAI:
    return gw.resource(
        "openai",
        lambda: openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0),
    )


def stream(client: openai.OpenAI, **kwargs: Any) -> list[Any]:
    return list(client.chat.completions.create(stream=True, **kwargs))


HELLO = [{"role": "user", "content": "hello gemini"}]
EXPECTED_USAGE = {
    "prompt_tokens": 21,
    "completion_tokens": 3 + 3,
    "total_tokens": 27,
    "cached_tokens": 4,
    "reasoning_tokens": 3,
}


def test_chat_through_gateway(gateway, gemini_upstream):
    answer = client_for(gateway).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "sys"}, *HELLO],
        temperature=0.5,
        max_tokens=64,
    )
    assert flatten(answer) == {
        "content": "echo: hello gemini",
        "tool_calls": [],
        "finish_reason": "stop",
        "usage": EXPECTED_USAGE,
    }
    assert answer.id == f"chatcmpl-{RESPONSE_ID}"
    assert answer.model == "gemini-2.5-flash"
    sent = gemini_upstream.last
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert CLIENT_KEY not in json.dumps(sent.headers)
    assert sent.json == {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}],
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64},
    }


def test_stream_through_gateway_equals_non_streamed(gateway, gemini_upstream):
    client = client_for(gateway)
    whole = client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
    chunks = stream(
        client, model="gemini-2.5-flash", messages=HELLO, stream_options={"include_usage": True}
    )
    assert (
        gemini_upstream.last.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert reassemble(chunks) == flatten(whole)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["echo:", " hello", " gemini"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert {c.id for c in chunks} == {whole.id}


def test_stream_without_usage_option_has_no_usage_chunk(gateway):
    chunks = stream(client_for(gateway), model="gemini-2.5-flash", messages=HELLO)
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_round_trip_through_gateway(gateway, gemini_upstream):
    client = client_for(gateway)
    tools = [
        WEATHER_TOOL,
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    messages: list[Any] = [{"role": "user", "content": "weather in Paris"}]
    first = client.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=tools, tool_choice="auto"
    )
    streamed = stream(
        client,
        model="gemini-2.5-flash",
        messages=messages,
        tools=tools,
        tool_choice="auto",
        stream_options={"include_usage": True},
    )
    assert reassemble(streamed) == flatten(first)
    sent = gemini_upstream.last.json
    assert (
        sent["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]
        == WEATHER_TOOL["function"]["parameters"]
    )
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"query": "weather in Paris", "n": 0}),
        ("get_time", {"query": "weather in Paris", "n": 1}),
    ]
    assert len({c.id for c in calls}) == 2
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"})
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 21}'})
    final = client.chat.completions.create(model="gemini-2.5-flash", messages=messages, tools=tools)
    assert (
        final.choices[0].message.content
        == 'Results: get_time={"output": "12:00"}; get_weather={"temp_c": 21}'
    )
    assert final.choices[0].finish_reason == "stop"
    contents = gemini_upstream.last.json["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"query": "weather in Paris", "n": 0}}},
        {"functionCall": {"name": "get_time", "args": {"query": "weather in Paris", "n": 1}}},
    ]


@pytest.mark.parametrize("streamed", [False, True])
def test_safety_finish_is_content_filter(gateway, streamed):
    client = client_for(gateway)
    messages = [{"role": "user", "content": "something unsafe"}]
    if streamed:
        chunks = stream(client, model="gemini-2.5-flash", messages=messages)
        assert reassemble(chunks)["finish_reason"] == "content_filter"
    else:
        answer = client.chat.completions.create(model="gemini-2.5-flash", messages=messages)
        assert answer.choices[0].finish_reason == "content_filter"
        assert answer.choices[0].message.content is None


@pytest.mark.parametrize("streamed", [False, True])
def test_rate_limit_stays_429_with_retry_after(gateway, gemini_upstream, streamed):
    def limited(received: Received) -> Reply:
        reply = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for generate_content.")
        reply.headers["retry-after"] = "17"
        return reply

    gemini_upstream.behavior = limited
    client = client_for(gateway)
    with pytest.raises(openai.RateLimitError) as caught:
        if streamed:
            stream(client, model="gemini-2.5-flash", messages=HELLO)
        else:
            client.chat.completions.create(model="gemini-2.5-flash", messages=HELLO)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "17"
    assert caught.value.body["code"] == "resource_exhausted"
    assert "Quota exceeded" in caught.value.body["message"]


def test_wrong_gateway_key_is_502_and_never_leaks(gateway, gemini_upstream):
    with pytest.raises(openai.APIStatusError) as caught:
        client_for(gateway).chat.completions.create(model="bad-model", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_auth_failed"
    assert "AIza-wrong" not in caught.value.response.text
    assert gemini_upstream.last.headers["x-goog-api-key"] == "AIza-wrong"


@pytest.mark.parametrize("failure", ["error_event", "dropped"])
def test_stream_failure_reaches_the_client_after_the_text_so_far(gateway, gemini_upstream, failure):
    first = STREAM_EVENTS[0]
    error = {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}
    chunks = [event_bytes(first), event_bytes(error) if failure == "error_event" else b""]
    gemini_upstream.behavior = lambda received: Reply(
        headers={"content-type": "text/event-stream"},
        chunks=chunks,
        drop_after=1 if failure == "dropped" else None,
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client_for(gateway).chat.completions.create(
            model="gemini-2.5-flash", messages=HELLO, stream=True
        ):
            received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "Hel"
    if failure == "error_event":
        assert "Internal error encountered." in str(caught.value)
