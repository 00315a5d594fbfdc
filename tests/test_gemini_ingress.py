"""The Gemini API as an ingress: translation units, then the `google-genai` SDK end to end.

Unit tests feed the pure translators of the gemini ingress (plugins/ingress/gemini) with
bodies as the official SDK writes them (captured field for field: camelCase,
`systemInstruction` with a role, `thinkingConfig` in snake case) and with canonical answers
and stream chunks. Round
trips through the `gemini` provider's own translator (plugins/providers/gemini) check that a
Gemini client talking to a Gemini backend through the canonical form loses nothing that
matters. Integration tests run `google-genai` against a real gateway in front of a real
OpenAI-speaking upstream, a real Gemini-speaking upstream and the in-process mock provider.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from modelway.errors import GatewayError
from modelway.plugins.ingress.gemini import (
    GeminiAPI,
    GeminiEndpoint,
    GeminiStreamEncoder,
    error_object,
    to_gemini_response,
    to_openai_request,
)
from modelway.plugins.ingress.gemini.options import json_schema
from modelway.plugins.providers.gemini.request import to_gemini_request
from modelway.plugins.providers.gemini.response import ResponseMeta, from_gemini_response
from modelway.plugins.providers.gemini.stream import GeminiStreamDecoder
from modelway.sse import SSEDecoder
from modelway.testing.fake_gemini import (
    RESPONSE_ID,
    gemini_behavior,
    google_error,
    plan_for,
    stream_events,
    whole_response,
)
from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer

CLIENT_KEY = "AIza-client-placeholder-41"
BACKEND_KEY = "sk-backend-7b2e"
GEMINI_KEY = "AIza-gateway-gemini-9c"
SSE = {"content-type": "text/event-stream"}
MODEL = "gemini-2.5-flash"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    + "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
WEATHER_SCHEMA = {
    "type": "OBJECT",
    "properties": {
        "city": {"type": "STRING", "description": "City name"},
        "days": {"type": "INTEGER", "nullable": True},
    },
    "required": ["city"],
    "propertyOrdering": ["city", "days"],
}
WEATHER_JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": ["integer", "null"]},
    },
    "required": ["city"],
}


def decode(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return to_openai_request(body, MODEL, stream)


def refused(body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        decode(body)
    assert info.value.status == 400
    return info.value


# ======================================================================== request decoding


def test_request_as_the_sdk_writes_it():
    body = {
        "contents": [{"parts": [{"text": "Hello"}], "role": "user"}],
        "systemInstruction": {"parts": [{"text": "Be brief"}], "role": "user"},
        "tools": [
            {
                "functionDeclarations": [
                    {"description": "Weather", "name": "get_weather", "parameters": WEATHER_SCHEMA}
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"allowedFunctionNames": ["get_weather"], "mode": "ANY"}
        },
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "topK": 40,
            "candidateCount": 2,
            "maxOutputTokens": 10,
            "stopSequences": ["X"],
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.3,
            "seed": 5,
            "responseMimeType": "application/json",
            "thinkingConfig": {"thinking_budget": 0},
        },
        "safetySettings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
        ],
    }
    assert decode(body, stream=True) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Hello"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,  # the hub's: a backend that takes no top_k refuses it (modelway.hubfit)
        "n": 2,
        "max_tokens": 10,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.3,
        "seed": 5,
        "stop": ["X"],
        "response_format": {"type": "json_object"},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": WEATHER_JSON_SCHEMA,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "thinking": {"type": "disabled"},  # thinkingBudget 0
        "stream": True,
    }


def test_snake_case_spellings_are_read_too():
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "system_instruction": {"parts": [{"text": "A"}, {"text": "B"}]},
        "generation_config": {"max_output_tokens": 7, "top_p": 0.5, "stop_sequences": "END"},
    }
    assert decode(body) == {
        "model": MODEL,
        "messages": [
            {
                "role": "system",
                "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
            },
            {"role": "user", "content": "Hi"},
        ],
        "top_p": 0.5,
        "max_tokens": 7,
        "stop": ["END"],
    }


def test_function_calls_and_responses_pair_by_name_in_order():
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {
                "role": "model",
                "parts": [
                    {"thought": True, "text": "thinking..."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2lnLTE=",
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                    {"functionCall": {"name": "get_time"}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_time", "response": {"t": "12:00"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 25}}},
                    {"text": "Thanks"},
                ],
            },
        ]
    }
    messages = decode(body)["messages"]
    assert messages == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "thinking...",  # an unsigned thought: text, no block
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    "extra_content": {"google": {"thought_signature": "c2lnLTE="}},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
                {
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_3", "content": '{"t":"12:00"}'},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": '{"temp":25}'},
        {"role": "user", "content": "Thanks"},
    ]


def test_function_ids_given_by_the_client_are_used():
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "q"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Let me check."},
                    {"functionCall": {"id": "call_a", "name": "f", "args": {"x": 1}}},
                    {"functionCall": {"id": "call_b", "name": "f", "args": {"x": 2}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"id": "call_b", "name": "f", "response": {"r": 2}}},
                    {"functionResponse": {"id": "call_a", "name": "f", "response": {"r": 1}}},
                ],
            },
        ]
    }
    messages = decode(body)["messages"]
    assert messages[1]["content"] == "Let me check."
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["call_a", "call_b"]
    assert [(m["role"], m["tool_call_id"]) for m in messages[2:]] == [
        ("tool", "call_b"),
        ("tool", "call_a"),
    ]


def test_a_response_without_its_call_is_a_400():
    error = refused(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
            ]
        }
    )
    assert "answers no functionCall" in error.message
    assert error.param == "contents[1].parts[0]"


def test_media_parts():
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Describe these"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {"inline_data": {"mime_type": "audio/wav", "data": "UklGRg=="}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://b/cat.jpg"}},
                    {"fileData": {"fileUri": "https://example.com/a/dog.png"}},
                ],
            }
        ]
    }
    assert decode(body)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe these"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {
                    "type": "file",
                    "file": {
                        "filename": "file.pdf",
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                    },
                },
                {"type": "image_url", "image_url": {"url": "gs://b/cat.jpg"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a/dog.png"}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"contents": []}, "contents"),
        ({}, "contents"),
        ({"contents": "hi"}, "contents"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cc/1"}, "cachedContent"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]},
            "tools[0].googleSearch",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"code_execution": {}}]},
            "tools[0].codeExecution",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
            },
            "generationConfig.responseModalities",
        ),
        (
            {"contents": [{"parts": [{"executableCode": {"code": "1"}}]}]},
            "contents[0].parts[0]",
        ),
        (
            {"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/a.pdf"}}]}]},
            "contents[0].parts[0].fileData",
        ),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png"}}]}]},
            "contents[0].parts[0].inlineData.data",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
            "contents[0].parts[0].functionCall.name",
        ),
        ({"contents": [{"parts": [{"weird": 1}]}]}, "contents[0].parts[0]"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": True}},
            "generationConfig.temperature",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generation_config": {"max_output_tokens": 1.5},
            },
            "generationConfig.maxOutputTokens",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"stopSequences": [1]}},
            "generationConfig.stopSequences",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": {"parts": [{"a": 1}]}},
            "systemInstruction.parts[0]",
        ),
    ],
)
def test_untranslatable_requests_are_400_naming_the_field(body, param):
    assert refused(body).param == param


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "AUTO"}, "auto"),
        ({"mode": "NONE"}, "none"),
        ({"mode": "VALIDATED"}, "auto"),
        ({"mode": "ANY"}, "required"),
        (
            {"mode": "ANY", "allowedFunctionNames": ["a", "b"]},
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "a"}},
                        {"type": "function", "function": {"name": "b"}},
                    ],
                },
            },
        ),
    ],
)
def test_tool_config_modes(config, expected):
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}],
        "toolConfig": {"functionCallingConfig": config},
    }
    decoded = decode(body)
    assert decoded["tool_choice"] == expected
    assert decoded["tools"] == [
        {"type": "function", "function": {"name": "a"}},
        {"type": "function", "function": {"name": "b"}},
    ]


def test_tool_config_without_tools_is_not_forwarded():
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    assert "tool_choice" not in decode(body)


def test_structured_output():
    base = {"contents": [{"parts": [{"text": "x"}]}]}
    json_spec = {"type": "object", "properties": {"a": {"type": "string"}}}
    by_json_schema = {"responseMimeType": "application/json", "responseJsonSchema": json_spec}
    by_schema = {"responseMimeType": "application/json", "responseSchema": WEATHER_SCHEMA}
    plain = {"responseMimeType": "text/plain", "responseJsonSchema": json_spec}
    assert decode({**base, "generationConfig": by_json_schema})["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": json_spec},
    }
    assert decode({**base, "generationConfig": by_schema})["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": WEATHER_JSON_SCHEMA},
    }
    assert "response_format" not in decode({**base, "generationConfig": plain})


def test_schema_conversion_keeps_property_names_and_nests():
    schema = {
        "type": "ARRAY",
        "items": {
            "type": "OBJECT",
            "properties": {"max_items": {"type": "NUMBER", "format": "float"}},
            "any_of": [{"type": "STRING"}, {"type": "TYPE_UNSPECIFIED"}],
        },
        "max_items": 3,
        "example": [1],
    }
    assert json_schema(schema) == {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"max_items": {"type": "number", "format": "float"}},
            "anyOf": [{"type": "string"}, {}],
        },
        "maxItems": 3,
    }


def test_parameters_json_schema_is_used_as_is():
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "$defs": {}}
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [{"name": "s", "parametersJsonSchema": schema}]}],
    }
    assert decode(body)["tools"][0]["function"]["parameters"] == schema


def test_through_the_gemini_provider_the_request_survives():
    """Gemini client -> canonical -> Gemini backend: the backend gets what the client sent."""
    sent = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "lookup", "args": {"q": "png"}},
                        "thoughtSignature": "c2ln",
                    }
                ],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "lookup", "response": {"hits": 3}}}],
            },
        ],
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.8,
            "maxOutputTokens": 99,
            "stopSequences": ["END"],
            "seed": 3,
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "lookup",
                        "description": "Look it up",
                        "parametersJsonSchema": {"type": "object"},
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}
        },
    }
    assert to_gemini_request(decode(sent)) == sent


# ======================================================================== answers

META = ResponseMeta("req-1", MODEL, 1700000000)


def test_text_answer_and_usage():
    body = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "model": "gpt-4o-2024",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 12,
            "total_tokens": 42,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 5},
        },
    }
    assert to_gemini_response(body, MODEL) == {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Hi!"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 30,
            "candidatesTokenCount": 7,
            "totalTokenCount": 42,
            "thoughtsTokenCount": 5,
            "cachedContentTokenCount": 8,
        },
        "modelVersion": "gpt-4o-2024",
        "responseId": "abc",
    }


def test_tool_call_answer():
    body = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_x",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": [1, 2]}'},
                            "extra_content": {"google": {"thought_signature": "c2ln"}},
                        },
                        {
                            "id": "call_y",
                            "type": "function",
                            "function": {"name": "g", "arguments": ""},
                        },
                    ],
                },
            }
        ],
    }
    answer = to_gemini_response(body, MODEL)
    assert answer["candidates"] == [
        {
            "content": {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"id": "call_x", "name": "f", "args": {"a": [1, 2]}},
                        "thoughtSignature": "c2ln",
                    },
                    {"functionCall": {"id": "call_y", "name": "g", "args": {}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ]
    assert answer["modelVersion"] == MODEL
    assert "usageMetadata" not in answer


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "STOP"),
        ("length", "MAX_TOKENS"),
        ("tool_calls", "STOP"),
        ("content_filter", "SAFETY"),
        ("something_new", "OTHER"),
        (None, "STOP"),
    ],
)
def test_finish_reasons(finish, reason):
    body = {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": finish}]}
    assert to_gemini_response(body, MODEL)["candidates"][0]["finishReason"] == reason


def test_filtered_answer_without_content_has_no_content():
    body = {
        "choices": [{"index": 0, "message": {"content": None}, "finish_reason": "content_filter"}]
    }
    assert to_gemini_response(body, MODEL)["candidates"] == [{"finishReason": "SAFETY", "index": 0}]


@pytest.mark.parametrize("user", ["tell me a story", "unsafe please"])
def test_gemini_answer_round_trips_through_the_canonical_form(user):
    request = {"contents": [{"role": "user", "parts": [{"text": user}]}]}
    original = whole_response(plan_for(request, MODEL))
    again = to_gemini_response(from_gemini_response(original, META), MODEL)
    expected = json.loads(json.dumps(original))
    for candidate in expected["candidates"]:
        candidate.pop("safetyRatings", None)
        if not candidate["content"]["parts"]:
            del candidate["content"]
    assert again == expected


def test_function_call_answer_round_trips_with_made_ids():
    request = {
        "contents": [{"role": "user", "parts": [{"text": "find"}]}],
        "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}],
    }
    original = whole_response(plan_for(request, MODEL))
    again = to_gemini_response(from_gemini_response(original, META), MODEL)
    calls = [p["functionCall"] for p in again["candidates"][0]["content"]["parts"]]
    assert [(c["name"], c["args"]) for c in calls] == [
        (p["functionCall"]["name"], p["functionCall"]["args"])
        for p in original["candidates"][0]["content"]["parts"]
    ]
    assert [c["id"] for c in calls] == [f"call_{RESPONSE_ID}_0", f"call_{RESPONSE_ID}_1"]


# ======================================================================== streams


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "model": "m-up",
        "choices": choices,
        **extra,
    }


def events(data: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    return [json.loads(e.data) for e in decoder.feed(data) + decoder.close()]


USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
USAGE_META = {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}


def test_text_stream_events_are_sent_as_they_come():
    encoder = GeminiStreamEncoder(MODEL)
    role = encoder.encode(chunk({"role": "assistant", "content": ""}))
    first = encoder.encode(chunk({"content": "Hel"}))
    second = encoder.encode(chunk({"content": "lo"}))
    finish = encoder.encode(chunk({}, "stop"))
    usage = encoder.encode(chunk(None, usage=USAGE))
    assert role == b"" and finish == b""
    assert first.endswith(b"\r\n\r\n") and first.startswith(b'data: {"candidates":')
    base = {"modelVersion": "m-up", "responseId": "s1"}
    assert events(first + second) == [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}], **base}
        for t in ("Hel", "lo")
    ]
    assert events(usage) == [
        {
            "candidates": [
                {"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}
            ],
            **base,
            "usageMetadata": USAGE_META,
        }
    ]
    assert encoder.end() == b""


def test_tool_call_deltas_become_one_function_call():
    encoder = GeminiStreamEncoder(MODEL)
    first = {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    out = encoder.encode(chunk({"role": "assistant", "tool_calls": [first]}))
    for piece in ('{"ci', 'ty": "Pa', 'ris"}'):
        out += encoder.encode(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        )
    second = {"index": 1, "id": "call_10", "function": {"name": "get_time", "arguments": "{}"}}
    out += encoder.encode(chunk({"tool_calls": [second]}))
    assert out == b""
    out = encoder.encode(chunk({}, "tool_calls")) + encoder.end()
    [final] = events(out)
    assert final["candidates"] == [
        {
            "content": {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {
                            "id": "call_9",
                            "name": "get_weather",
                            "args": {"city": "Paris"},
                        }
                    },
                    {"functionCall": {"id": "call_10", "name": "get_time", "args": {}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ]
    assert "usageMetadata" not in final


def test_usage_on_the_finish_chunk_and_several_choices():
    encoder = GeminiStreamEncoder(MODEL)
    out = encoder.encode(
        {"choices": [{"index": 1, "delta": {"content": "b"}, "finish_reason": "length"}]}
    )
    out += encoder.encode(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}
    )
    out += encoder.end()
    text_event, final = events(out)
    assert text_event["candidates"] == [
        {"content": {"role": "model", "parts": [{"text": "b"}]}, "index": 1}
    ]
    assert [(c["index"], c["finishReason"]) for c in final["candidates"]] == [
        (0, "STOP"),
        (1, "MAX_TOKENS"),
    ]
    assert final["usageMetadata"] == USAGE_META
    assert final["modelVersion"] == MODEL


def test_empty_stream_still_ends_with_a_finish():
    [final] = events(GeminiStreamEncoder(MODEL).end())
    assert final["candidates"] == [
        {"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}
    ]


def test_stream_error_event_is_what_the_sdk_raises_on():
    data = GeminiStreamEncoder(MODEL).error(
        GatewayError(502, "overloaded", "server_error", "overloaded")
    )
    assert data.startswith(b'data: {"error":') and data.endswith(b"\r\n\r\n")
    assert events(data)[0]["error"]["code"] == 502


def test_gemini_stream_round_trips_through_the_canonical_form():
    """Gemini backend stream -> canonical chunks -> Gemini client stream: same text, finish
    and usage, and the events merged equal the non-streamed answer."""
    request = {"contents": [{"role": "user", "parts": [{"text": "tell me a story"}]}]}
    plan = plan_for(request, MODEL)
    upstream = b"".join(
        b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in stream_events(plan)
    )
    decoder = GeminiStreamDecoder(META)
    canonical = decoder.feed(upstream) + decoder.close()
    encoder = GeminiStreamEncoder(MODEL)
    client = events(b"".join(encoder.encode(c) for c in canonical) + encoder.end())
    text = "".join(
        p["text"]
        for e in client
        for c in e["candidates"]
        for p in c.get("content", {}).get("parts", [])
    )
    whole = whole_response(plan)
    assert text == whole["candidates"][0]["content"]["parts"][0]["text"]
    assert client[-1]["candidates"][0]["finishReason"] == "STOP"
    assert client[-1]["usageMetadata"] == whole["usageMetadata"]
    assert {e["responseId"] for e in client} == {RESPONSE_ID}


# ======================================================================== errors


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (GatewayError(400, "bad"), "INVALID_ARGUMENT"),
        (GatewayError(401, "who", code="invalid_api_key"), "UNAUTHENTICATED"),
        (GatewayError(403, "no"), "PERMISSION_DENIED"),
        (GatewayError(404, "gone", code="model_not_found"), "NOT_FOUND"),
        (GatewayError(413, "big", code="request_too_large"), "INVALID_ARGUMENT"),
        (GatewayError(429, "slow", code="rate_limit_exceeded"), "RESOURCE_EXHAUSTED"),
        (GatewayError(429, "quota", code="resource_exhausted"), "RESOURCE_EXHAUSTED"),
        (GatewayError(400, "pre", code="failed_precondition"), "FAILED_PRECONDITION"),
        (GatewayError(500, "oops"), "INTERNAL"),
        (GatewayError(502, "bad gw", "server_error", "upstream_error"), "UNAVAILABLE"),
        (GatewayError(503, "busy"), "UNAVAILABLE"),
        (GatewayError(504, "late", code="timeout"), "DEADLINE_EXCEEDED"),
        (GatewayError(529, "overloaded"), "INTERNAL"),
    ],
)
def test_error_shape(error, status):
    body = error_object(error)["error"]
    assert (body["code"], body["message"], body["status"]) == (error.status, error.message, status)
    if error.code and error.code.upper() != status:
        assert body["details"][0]["reason"] == error.code.upper()
    else:
        assert "details" not in body


def test_paths_and_methods():
    api = GeminiAPI()
    generate = api.match("POST", "/v1beta/models/gemini-2.5-flash:generateContent")
    assert isinstance(generate, GeminiEndpoint)
    assert (generate.model, generate.stream, generate.name) == (
        "gemini-2.5-flash",
        False,
        "generateContent",
    )
    stream = api.match("POST", "/v1/models/tuned%2Fx:streamGenerateContent")
    assert isinstance(stream, GeminiEndpoint)
    assert (stream.model, stream.stream) == ("tuned/x", True)
    assert api.match("GET", "/v1beta/models/m:generateContent") is None
    count = api.match("POST", "/v1beta/models/m:countTokens")
    assert isinstance(count, GeminiEndpoint) and count.wire == "gemini.count_tokens"
    assert api.match("POST", "/v2/models/m:generateContent") is None
    assert api.match("POST", "/v1/chat/completions") is None
    assert api.claims("/v1beta/models/m:generateContent")
    assert api.claims("/v1beta/models/m:countTokens")
    assert not api.claims("/v1beta/models/m:embedContent")
    assert not api.claims("/v1/models")


# ======================================================================== through the gateway

PIECES = ["The", " quick", " brown", " fox", "."]
TEXT = "".join(PIECES)
UP_USAGE = {
    "prompt_tokens": 31,
    "completion_tokens": 17,
    "total_tokens": 48,
    "prompt_tokens_details": {"cached_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 4},
}
WEATHER_ARGS = {"city": "Paris"}


def up_chunks(request: dict[str, Any], deltas: list[dict[str, Any]], finish: str) -> list[bytes]:
    out = [chunk(d) for d in deltas] + [chunk({}, finish)]
    if (request.get("stream_options") or {}).get("include_usage") is True:
        out.append(chunk(None, usage=UP_USAGE))
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in out] + [b"data: [DONE]\n\n"]


def up_completion(message: dict[str, Any], finish: str) -> bytes:
    body = {
        "id": "chatcmpl-up1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m-up",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": UP_USAGE,
    }
    return json.dumps(body).encode()


def text_behavior(received: Received) -> Reply:
    request = received.json
    if request.get("stream"):
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in PIECES]
        return Reply(headers=SSE, chunks=up_chunks(request, deltas, "stop"))
    return Reply(body=up_completion({"role": "assistant", "content": TEXT}, "stop"))


def tool_behavior(received: Received) -> Reply:
    """Calls get_weather until the conversation holds a tool result, then answers with text."""
    request = received.json
    if request["messages"][-1]["role"] == "tool":
        return text_behavior(received)
    arguments = json.dumps(WEATHER_ARGS)
    if not request.get("stream"):
        call = {
            "id": "call_w1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": arguments},
        }
        return Reply(
            body=up_completion(
                {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
            )
        )
    first = {
        "index": 0,
        "id": "call_w1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    deltas = [{"role": "assistant", "content": None, "tool_calls": [first]}] + [
        {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        for piece in (arguments[:5], arguments[5:])
    ]
    return Reply(headers=SSE, chunks=up_chunks(request, deltas, "tool_calls"))


def rate_limited(received: Received) -> Reply:
    body = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    headers = {"content-type": "application/json", "retry-after": "7"}
    return Reply(status=429, body=json.dumps(body).encode(), headers=headers)


def error_mid_stream(received: Received) -> Reply:
    deltas = [{"role": "assistant", "content": ""}, {"content": "The"}]
    chunks = up_chunks(received.json, deltas, "stop")[:2]
    error = {"error": {"message": "overloaded", "type": "server_error", "code": "overloaded"}}
    return Reply(headers=SSE, chunks=[*chunks, b"data: " + json.dumps(error).encode() + b"\n\n"])


def gemini_key_check(received: Received) -> Reply | None:
    if received.headers.get("x-goog-api-key") != GEMINI_KEY:
        return google_error(400, "INVALID_ARGUMENT", "API key not valid.")
    return None


@pytest.fixture(scope="module")
def openai_server() -> Iterator[UpstreamServer]:
    with UpstreamServer(text_behavior) as server:
        yield server


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[UpstreamServer]:
    with UpstreamServer(gemini_behavior(None, gemini_key_check)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory, openai_server: UpstreamServer, gemini_server: UpstreamServer
) -> Iterator[RunningGateway]:
    config = {
        "plugins": ["openai", "mock", "gemini", "gemini_api"],
        "gateway": {"api_keys": [CLIENT_KEY]},
        "backends": {
            "up": {"provider": "openai", "base_url": openai_server.url, "api_key": BACKEND_KEY},
            "gem": {
                "provider": "gemini",
                "base_url": f"http://127.0.0.1:{gemini_server.port}",
                "api_key": GEMINI_KEY,
            },
            "mock": {"provider": "mock", "chunk_delay_ms": 0},
        },
        "routes": [
            {"match": {"model": "gemini-mock*"}, "backend": "mock"},
            {"match": {"model": "gemini-native*"}, "backend": "gem"},
            {"match": {"model": "gemini-*"}, "backend": "up"},
        ],
    }
    with run_gateway(config, directory=tmp_path_factory.mktemp("gemini")) as gw:
        yield gw


@pytest.fixture
def up(openai_server: UpstreamServer) -> UpstreamServer:
    openai_server.behavior = text_behavior
    openai_server.received.clear()
    return openai_server


@pytest.fixture
def gem(gemini_server: UpstreamServer) -> UpstreamServer:
    gemini_server.received.clear()
    return gemini_server


def sdk(
    gateway: RunningGateway, api_version: str | None = None, key: str = CLIENT_KEY
) -> genai.Client:
    options = types.HttpOptions(base_url=gateway.url, api_version=api_version)
    return gateway.resource(
        ("genai", api_version, key),
        lambda: genai.Client(api_key=key, http_options=options),
    )


@pytest.fixture(params=["v1beta", None], ids=["v1beta", "sdk-default"])
def client(request, gateway: RunningGateway) -> genai.Client:
    return sdk(gateway, request.param)


ASK = "Tell me about foxes."


def streamed(client: genai.Client, model: str, **params: Any) -> tuple[str, list[Any]]:
    pieces = list(client.models.generate_content_stream(model=model, contents=ASK, **params))
    return "".join(p.text or "" for p in pieces), pieces


def test_sdk_answer_from_an_openai_upstream(client, up):
    config = types.GenerateContentConfig(
        system_instruction="Be brief.",
        temperature=0.2,
        max_output_tokens=300,
        stop_sequences=["END"],
    )
    answer = client.models.generate_content(model="gemini-test", contents=ASK, config=config)
    assert answer.text == TEXT
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert answer.model_version == "m-up"
    assert answer.response_id == "up1"
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (
        31,
        13,
        48,
    )
    assert (usage.thoughts_token_count, usage.cached_content_token_count) == (4, 8)
    sent = up.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {BACKEND_KEY}"
    assert CLIENT_KEY not in json.dumps(sent.headers)
    assert sent.json == {
        "model": "gemini-test",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": ASK}],
        "temperature": 0.2,
        "max_tokens": 300,
        "stop": ["END"],
    }


def test_sdk_stream_equals_the_answer(client, up):
    whole = client.models.generate_content(model="gemini-test", contents=ASK)
    text, pieces = streamed(client, "gemini-test")
    assert [p.text for p in pieces[:-1]] == PIECES
    assert text == whole.text == TEXT
    final = pieces[-1]
    assert final.candidates[0].finish_reason == types.FinishReason.STOP
    assert final.usage_metadata == whole.usage_metadata
    assert up.last.json["stream"] is True
    assert up.last.json["stream_options"] == {"include_usage": True}


def test_sdk_async_stream(gateway, up):
    async def run() -> list[str]:
        async with sdk(gateway, "v1beta").aio as client:
            stream = await client.models.generate_content_stream(model="gemini-test", contents=ASK)
            return [piece.text or "" async for piece in stream]

    assert "".join(asyncio.run(run())) == TEXT


def test_sdk_against_the_mock_provider(client):
    whole = client.models.generate_content(model="gemini-mock-1", contents=ASK)
    text, pieces = streamed(client, "gemini-mock-1")
    expected = f"This is a mock reply from modelway. You said: {ASK}"
    assert whole.text == text == expected
    assert whole.model_version == pieces[-1].model_version == "mock/gemini-mock-1"
    assert whole.usage_metadata.candidates_token_count == len(expected.split())
    assert pieces[-1].usage_metadata == whole.usage_metadata


WEATHER_TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather",
            parameters=types.Schema(
                type=types.Type.OBJECT,
                properties={"city": types.Schema(type=types.Type.STRING)},
                required=["city"],
            ),
        )
    ]
)
WEATHER_FUNCTION = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_sdk_tool_round_trip(client, up, stream):
    up.behavior = tool_behavior
    config = types.GenerateContentConfig(
        tools=[WEATHER_TOOL],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode="ANY")
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    if stream:
        pieces = list(
            client.models.generate_content_stream(model="gemini-test", contents=ASK, config=config)
        )
        calls = [c for p in pieces for c in p.function_calls or []]
        model_turn = types.Content(role="model", parts=[types.Part(function_call=c) for c in calls])
    else:
        answer = client.models.generate_content(model="gemini-test", contents=ASK, config=config)
        calls = answer.function_calls
        model_turn = answer.candidates[0].content
    assert [(c.id, c.name, c.args) for c in calls] == [("call_w1", "get_weather", WEATHER_ARGS)]
    assert up.last.json["tools"] == [WEATHER_FUNCTION]
    assert up.last.json["tool_choice"] == "required"
    turns = [
        types.Content(role="user", parts=[types.Part(text=ASK)]),
        model_turn,
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"temp_c": 15})],
        ),
    ]
    second = client.models.generate_content(model="gemini-test", contents=turns, config=config)
    assert second.text == TEXT
    assert up.last.json["messages"] == [
        {"role": "user", "content": ASK},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"temp_c":15}'},
    ]


def test_sdk_to_a_gemini_backend(client, gem):
    """Gemini client and Gemini backend: the same-API lane, streamed or not. The backend gets
    the SDK's own body (its `systemInstruction` role included), the model in the path."""
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50)
    whole = client.models.generate_content(model="gemini-native-1", contents=ASK, config=config)
    text, pieces = streamed(client, "gemini-native-1", config=config)
    assert whole.text == text == f"echo: {ASK}"
    assert whole.response_id == pieces[-1].response_id == RESPONSE_ID
    assert whole.usage_metadata.prompt_token_count == 21
    assert pieces[-1].usage_metadata == whole.usage_metadata
    sent = gem.received[0]
    version = sent.path.split("/")[1]  # the SDK's own choice is kept
    assert version in ("v1", "v1beta")
    assert sent.path == f"/{version}/models/gemini-native-1:generateContent"
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert sent.json == {
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "contents": [{"role": "user", "parts": [{"text": ASK}]}],
        "generationConfig": {"maxOutputTokens": 50},
    }
    assert (
        gem.received[1].path == f"/{version}/models/gemini-native-1:streamGenerateContent?alt=sse"
    )


def test_sdk_safety_finish_from_a_gemini_backend(client, gem):
    answer = client.models.generate_content(model="gemini-native-1", contents="unsafe stuff")
    assert answer.candidates[0].finish_reason == types.FinishReason.SAFETY


def raw_post(
    gateway: RunningGateway, path: str, body: bytes, method: str = "POST"
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=30)
    headers = {"content-type": "application/json", "x-goog-api-key": CLIENT_KEY}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def test_unknown_model_is_a_google_404(client, up):
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="nobody-serves-this", contents=ASK)
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert "does not exist or no route serves it" in info.value.message
    assert up.received == []


def test_untranslatable_tool_is_a_google_400(client, up):
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-test", contents=ASK, config=config)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "googleSearch" in info.value.message
    assert up.received == []


def test_malformed_json_is_a_google_400(gateway, up):
    status, data = raw_post(
        gateway, "/v1beta/models/gemini-test:generateContent", b'{"contents": ['
    )
    assert status == 400
    assert data["error"]["status"] == "INVALID_ARGUMENT" and data["error"]["code"] == 400
    assert "not valid JSON" in data["error"]["message"]
    assert up.received == []


def test_wrong_method_is_a_google_405(gateway):
    status, data = raw_post(gateway, "/v1beta/models/gemini-test:generateContent", b"", "GET")
    assert status == 405
    assert data["error"]["code"] == 405 and data["error"]["status"] == "INVALID_ARGUMENT"


def test_upstream_429_is_resource_exhausted(client, up):
    up.behavior = rate_limited
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-test", contents=ASK)
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert info.value.message == "Rate limit reached"
    assert info.value.response.headers["retry-after"] == "7"


def test_error_mid_stream_raises_in_the_sdk(client, up):
    up.behavior = error_mid_stream
    seen: list[str] = []
    with pytest.raises(genai_errors.APIError) as info:
        for piece in client.models.generate_content_stream(model="gemini-test", contents=ASK):
            seen.append(piece.text or "")
    assert seen == ["The"]
    assert info.value.message == "overloaded"


def test_wrong_gateway_key_is_unauthenticated(gateway, up):
    wrong = sdk(gateway, key="AIza-wrong")  # kept: a dropped Client closes its HTTP client
    with pytest.raises(genai_errors.ClientError) as info:
        wrong.models.generate_content(model="gemini-test", contents=ASK)
    assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")
    assert up.received == []
