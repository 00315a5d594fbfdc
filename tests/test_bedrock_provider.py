"""The `bedrock` provider: Converse translation, the eventstream decoder, SigV4, end to end.

Wire fixtures follow the Bedrock Runtime API reference as botocore ships it (the
`bedrock-runtime` 2023-09-30 service model): expected request bodies are produced by
botocore's own rest-json serializer from boto3-shaped parameters, and the ConverseStream
frames the test upstream writes are checked to parse with botocore's eventstream parser.
Integration tests run the `openai` SDK through a real gateway to an upstream that checks the
path, recomputes the SigV4 signature of what it received, and answers in Bedrock's format.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import botocore.session
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.parsers import EventStreamJSONParser
from botocore.serialize import create_serializer
from hypothesis import given, settings
from hypothesis import strategies as st

from modelway.canonical import CanonicalRequest, Operation
from modelway.config import BackendConfig
from modelway.context import ClientInfo, RequestContext
from modelway.errors import ConfigError, GatewayError
from modelway.plugins.providers.bedrock import BedrockOptions, BedrockProvider
from modelway.plugins.providers.bedrock.eventstream import EventStreamDecoder
from modelway.plugins.providers.bedrock.request import converse_request
from modelway.plugins.providers.bedrock.response import chat_completion, finish_reason
from modelway.plugins.providers.bedrock.stream import ConverseStreamTranslator
from modelway.runtime import load_gateway
from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import Received, Reply, UpstreamServer

EVENTSTREAM = "application/vnd.amazon.eventstream"
REGION = "us-west-2"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN//////////wEaDExampleSessionToken"
MODEL_ARN = (
    "arn:aws:bedrock:us-west-2:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
)
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")

# --------------------------------------------------------------------------- fixtures

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-tiny-image-").decode()

TEXT_ANSWER = {
    "output": {
        "message": {"role": "assistant", "content": [{"text": "Paris is the capital of France."}]}
    },
    "stopReason": "end_turn",
    "usage": {"inputTokens": 21, "outputTokens": 8, "totalTokens": 29},
    "metrics": {"latencyMs": 412},
}
TOOL_ANSWER = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"text": "Let me check the weather."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                        "name": "get_weather",
                        "input": {"city": "Paris", "unit": "celsius"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {
        "inputTokens": 320,
        "outputTokens": 45,
        "totalTokens": 1389,
        "cacheReadInputTokens": 1024,
        "cacheWriteInputTokens": 0,
    },
    "metrics": {"latencyMs": 950},
}


def boto_body(params: dict[str, Any], operation: str = "Converse") -> tuple[str, dict[str, Any]]:
    """botocore's own wire form (URL path, JSON body) of boto3-shaped Converse parameters."""
    serializer = create_serializer("rest-json", include_validation=True)
    wire = serializer.serialize_to_request(params, SERVICE.operation_model(operation))
    return wire["url_path"], json.loads(wire["body"])


# ------------------------------------------------------------------ eventstream (test side)


def _header(name: str, value: Any) -> bytes:
    raw = bytes([len(name.encode())]) + name.encode()
    if isinstance(value, bool):
        return raw + bytes([0 if value else 1])
    if isinstance(value, int):
        return raw + bytes([4]) + struct.pack(">i", value)
    if isinstance(value, bytes):
        return raw + bytes([6]) + struct.pack(">H", len(value)) + value
    return raw + bytes([7]) + struct.pack(">H", len(value.encode())) + value.encode()


def frame(headers: dict[str, Any], payload: bytes) -> bytes:
    """One eventstream message: prelude (lengths + CRC32), headers, payload, message CRC32."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, json.dumps(payload).encode())


def exception_frame(kind: str, message: str) -> bytes:
    headers = {
        ":exception-type": kind,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, json.dumps({"message": message}).encode())


def stream_events(answer: dict[str, Any], pieces: int = 3) -> list[tuple[str, dict[str, Any]]]:
    """The ConverseStream events that carry `answer`: text in `pieces` deltas per block,
    tool input in fragments, then messageStop and metadata (Bedrock adds a `p` padding)."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(answer["output"]["message"]["content"]):
        if "text" in block:
            for part in _split(block["text"], pieces):
                events.append(
                    (
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"text": part}, "p": "abc"},
                    )
                )
        else:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            for part in _split(json.dumps(use["input"]), pieces):
                delta = {"toolUse": {"input": part}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    events.append(("messageStop", {"stopReason": answer["stopReason"]}))
    events.append(("metadata", {"usage": answer["usage"], "metrics": answer["metrics"]}))
    return events


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_bytes(answer: dict[str, Any]) -> bytes:
    return b"".join(event(kind, payload) for kind, payload in stream_events(answer))


class _RawStream:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self) -> Iterator[bytes]:
        yield self._data


def botocore_events(data: bytes) -> list[dict[str, Any]]:
    """What boto3 would hand its caller for these ConverseStream bytes."""
    shape = SERVICE.operation_model("ConverseStream").output_shape.members["stream"]
    return list(EventStream(_RawStream(data), shape, EventStreamJSONParser(), "ConverseStream"))


# --------------------------------------------------------------------------- request translation


def test_request_matches_botocore_serialization():
    body = {
        "model": MODEL_ARN,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image, and the weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "9C"}]},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\nHuman:"],
        "stream": False,
        "user": "u-1",
    }
    params = {
        "modelId": MODEL_ARN,
        "system": [{"text": "You are terse."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is in this image, and the weather in Paris?"},
                    {"image": {"format": "png", "source": {"bytes": base64.b64decode(PNG)}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {
                        "toolUse": {
                            "toolUseId": "call_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                    {
                        "toolUse": {
                            "toolUseId": "call_2",
                            "name": "get_weather",
                            "input": {"city": "Lyon"},
                        }
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C sunny"}]}},
                    {"toolResult": {"toolUseId": "call_2", "content": [{"text": "9C"}]}},
                    {"text": "And tomorrow?"},
                ],
            },
        ],
        "inferenceConfig": {
            "maxTokens": 512,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["\n\nHuman:"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "get_weather"}},
        },
    }
    path, expected = boto_body(params)
    assert converse_request(body) == expected
    assert path.startswith("/model/") and unquote(path.split("/")[2]) == MODEL_ARN


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"auto": {}}), ("required", {"any": {}}), (None, None)],
)
def test_tool_choice(choice, expected):
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER_TOOL]}
    if choice:
        body["tool_choice"] = choice
    config = converse_request(body)["toolConfig"]
    assert config.get("toolChoice") == expected
    boto_body({"modelId": "m", **converse_request(body)})  # valid per the service model


def test_tool_choice_none_leaves_tools_out_unless_the_history_needs_them():
    plain = {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "none",
    }
    assert "toolConfig" not in converse_request(plain)
    history = {
        **plain,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
        ],
    }
    config = converse_request(history)["toolConfig"]
    assert "toolChoice" not in config and config["tools"][0]["toolSpec"]["name"] == "get_weather"


def test_consecutive_roles_merge_and_developer_is_system():
    body = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "a"}]},
            {"role": "system", "content": "b"},
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "x"},
            {"role": "assistant", "content": ""},
        ]
    }
    out = converse_request(body)
    assert out["system"] == [{"text": "a"}, {"text": "b"}]
    assert out["messages"] == [
        {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
        {"role": "assistant", "content": [{"text": "x"}]},
    ]


def test_response_format_json_schema_is_output_config():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 9,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema},
        },
    }
    out = converse_request(body)
    assert out["inferenceConfig"] == {"maxTokens": 9}
    text_format = out["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == schema
    boto_body({"modelId": "m", **out})


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"n": 2}, "one choice"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                        ],
                    }
                ]
            },
            "data: URLs",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,AAAA"},
                            }
                        ],
                    }
                ]
            },
            "'bmp'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    }
                ]
            },
            "JSON",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input_audio"),
    ],
)
def test_untranslatable_requests_are_400(body, fragment):
    body = {"messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(GatewayError) as caught:
        converse_request(body)
    assert caught.value.status == 400 and fragment in caught.value.message


# --------------------------------------------------------------------------- response translation


def test_text_answer():
    out = chat_completion(TEXT_ANSWER, response_id="chatcmpl-x", model="m", created=7)
    assert out == {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "Paris is the capital of France."},
            }
        ],
        "usage": {"prompt_tokens": 21, "completion_tokens": 8, "total_tokens": 29},
    }


def test_tool_answer_and_cache_usage():
    out = chat_completion(TOOL_ANSWER, response_id="chatcmpl-x", model="m", created=7)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check the weather."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius"}'},
        }
    ]
    # Bedrock's totalTokens counts cached input too; OpenAI's prompt_tokens includes it.
    assert out["usage"] == {
        "prompt_tokens": 1344,
        "completion_tokens": 45,
        "total_tokens": 1389,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    assert out["usage"]["total_tokens"] == TOOL_ANSWER["usage"]["totalTokens"]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_finish_reasons(stop, finish):
    assert stop in SERVICE.shape_for("StopReason").enum
    assert finish_reason(stop) == finish


def test_garbled_answer_is_502():
    with pytest.raises(GatewayError) as caught:
        chat_completion({"stopReason": "end_turn"}, response_id="x", model="m", created=1)
    assert caught.value.status == 502


# --------------------------------------------------------------------------- eventstream decoding


def test_fixture_frames_parse_with_botocore():
    data = stream_bytes(TOOL_ANSWER)
    parsed = botocore_events(data)
    expected = [
        {kind: {k: v for k, v in payload.items() if k != "p"}}
        for kind, payload in stream_events(TOOL_ANSWER)
    ]
    assert parsed == expected


def _decode_all(pieces: list[bytes]) -> list[tuple[dict[str, Any], bytes]]:
    decoder = EventStreamDecoder()
    out = [(m.headers, m.payload) for piece in pieces for m in decoder.feed(piece)]
    decoder.close()
    return out


def test_decoder_agrees_with_botocore_on_every_header_type():
    headers = {":event-type": "x", "flag": True, "off": False, "n": -5, "blob": b"\x00\xff"}
    data = frame(headers, b'{"a":1}') + frame({}, b"") + frame({"s": "é"}, b"payload")
    ours = _decode_all([data])
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    theirs = [(m.headers, m.payload) for m in buffer]
    assert ours == theirs and ours[0][0] == headers


def test_decoder_every_split_point():
    data = stream_bytes(TOOL_ANSWER) + stream_bytes(TEXT_ANSWER)
    whole = _decode_all([data])
    assert len(whole) == len(stream_events(TOOL_ANSWER)) + len(stream_events(TEXT_ANSWER))
    for cut in range(len(data) + 1):
        assert _decode_all([data[:cut], data[cut:]]) == whole, cut


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=40))
def test_decoder_any_split(cuts):
    data = stream_bytes(TOOL_ANSWER)
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert _decode_all(pieces) == _decode_all([data])


@pytest.mark.parametrize("where", ["prelude", "message"])
def test_decoder_rejects_bad_checksums(where):
    data = bytearray(event("messageStart", {"role": "assistant"}))
    data[9 if where == "prelude" else -1] ^= 0xFF
    with pytest.raises(GatewayError) as caught:
        EventStreamDecoder().feed(bytes(data))
    assert caught.value.status == 502 and "checksum" in caught.value.message


def test_decoder_rejects_a_cut_off_stream():
    decoder = EventStreamDecoder()
    data = event("messageStart", {"role": "assistant"})
    assert decoder.feed(data[:-3]) == []
    with pytest.raises(GatewayError):
        decoder.close()


# --------------------------------------------------------------------------- stream translation


def _provider(**options: Any) -> BedrockProvider:
    extra = {
        "base_url": options.pop("base_url", None),
        "api_key": options.pop("api_key", None),
        "auth": options.pop("auth", "gateway"),
    }
    backend = BackendConfig(provider="bedrock", **extra)
    return BedrockProvider(backend, BedrockOptions(region=REGION, **options))


def _ctx(key: str | None = None) -> RequestContext:
    return RequestContext(
        id="req42",
        method="POST",
        path="/v1/chat/completions",
        host="gw",
        headers={},
        client=ClientInfo("127.0.0.1", "anon", key),
    )


def _request(stream: bool = False, model: str = MODEL_ARN) -> CanonicalRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return CanonicalRequest(Operation.CHAT, model, body, stream)


def reassemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat.completion a client builds from OpenAI chunks."""
    text, calls, finish, usage = "", {}, None, None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    call["index"],
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                slot["function"]["name"] += call.get("function", {}).get("name") or ""
                slot["function"]["arguments"] += call.get("function", {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"message": message, "finish_reason": finish, "usage": usage}


def _normalized(answer: dict[str, Any]) -> dict[str, Any]:
    choice = answer["choices"][0]
    message = dict(choice["message"])
    for call in message.get("tool_calls") or []:
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return {"message": message, "finish_reason": choice["finish_reason"], "usage": answer["usage"]}


@pytest.mark.parametrize("answer", [TEXT_ANSWER, TOOL_ANSWER], ids=["text", "tools"])
def test_stream_reassembles_to_the_non_streamed_answer(answer):
    provider = _provider(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
    decoder = provider.stream_decoder(_ctx(), _request(stream=True))
    data = stream_bytes(answer)
    chunks = [c for i in range(0, len(data), 17) for c in decoder.feed(data[i : i + 17])]
    chunks += decoder.close()
    whole = provider.parse_response(_ctx(), _request(), 200, json.dumps(answer).encode()).body
    streamed = reassemble(chunks)
    for call in streamed["message"].get("tool_calls") or []:
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    assert streamed == _normalized(whole)
    assert {c["id"] for c in chunks} == {whole["id"]} == {"chatcmpl-req42"}


def test_stream_chunk_order_for_tools():
    translator = ConverseStreamTranslator("id", "m", 1)
    chunks = [
        c
        for kind, payload in stream_events(TOOL_ANSWER, pieces=2)
        for c in translator.event(kind, payload)
    ]
    deltas = [c["choices"][0]["delta"] if c["choices"] else "usage" for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1:3] == [{"content": "Let me check "}, {"content": "the weather."}]
    assert deltas[3] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[4:6]]
    assert fragments == ['{"city": "Paris", ', '"unit": "celsius"}']
    assert all(
        d["tool_calls"][0] == {"index": 0, "function": {"arguments": f}}
        for d, f in zip(deltas[4:6], fragments, strict=True)
    )
    assert chunks[6]["choices"][0]["finish_reason"] == "tool_calls" and deltas[6] == {}
    assert deltas[7] == "usage" and chunks[7]["usage"]["completion_tokens"] == 45
    assert len(chunks) == 8


def test_stream_exception_event_is_an_error_chunk():
    decoder = _provider(api_key="k").stream_decoder(_ctx(), _request(stream=True))
    decoder.feed(event("messageStart", {"role": "assistant"}))
    [chunk] = decoder.feed(exception_frame("throttlingException", "Too many tokens, slow down."))
    assert chunk["error"]["status"] == 429
    assert "Too many tokens, slow down." in chunk["error"]["message"]
    assert decoder.feed(stream_bytes(TEXT_ANSWER)) == [] and decoder.close() == []


def test_stream_exception_after_events_in_one_read_keeps_those_events():
    decoder = _provider(api_key="k").stream_decoder(_ctx(), _request(stream=True))
    data = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    *chunks, error = decoder.feed(data + exception_frame("internalServerException", "boom"))
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]
    assert error["error"]["status"] == 500 and "boom" in error["error"]["message"]
    assert decoder.close() == []


def test_stream_cut_before_message_stop_is_truncated():
    decoder = _provider(api_key="k").stream_decoder(_ctx(), _request(stream=True))
    data = stream_bytes(TEXT_ANSWER)
    cut = b"".join(
        event(kind, payload)
        for kind, payload in stream_events(TEXT_ANSWER)
        if kind not in ("messageStop", "metadata")
    )
    chunks = decoder.feed(cut) + decoder.close()
    assert [c for c in chunks if "error" in c] == [chunks[-1]]
    assert chunks[-1]["error"]["code"] == "upstream_stream_truncated"
    assert decoder.feed(data) == [] and decoder.close() == []


def test_broken_frame_after_good_ones_in_one_read():
    decoder = EventStreamDecoder()
    good = event("messageStart", {"role": "assistant"})
    broken = bytearray(good)
    broken[-1] ^= 1
    assert len(decoder.feed(good + bytes(broken))) == 1
    with pytest.raises(GatewayError):
        decoder.feed(good)


# --------------------------------------------------------------------------- errors


def test_throttling_error_keeps_status_and_message():
    headers = {
        "x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    }
    body = b'{"message":"Too many requests, please wait before trying again."}'
    error = _provider(api_key="k").parse_error(429, headers, body)
    assert error.status == 429 and error.code == "ThrottlingException"
    assert "Too many requests, please wait before trying again." in error.message


def test_validation_error_is_400():
    headers = {"x-amzn-errortype": "ValidationException"}
    error = _provider(api_key="k").parse_error(400, headers, b'{"message":"bad maxTokens"}')
    assert (error.status, error.code) == (400, "ValidationException")


def test_rejected_credentials_are_502_without_secrets():
    provider = _provider(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
    body = json.dumps(
        {
            "message": f"The security token included in the request is invalid. "
            f"Credential={ACCESS_KEY}/20240101/{REGION}/bedrock"
        }
    ).encode()
    error = provider.parse_error(403, {"x-amzn-errortype": "UnrecognizedClientException"}, body)
    assert error.status == 502 and error.code == "upstream_auth_failed"
    assert ACCESS_KEY not in error.message and SECRET_KEY not in error.message


# --------------------------------------------------------------------------- URL and signing

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def signature_problem(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    secret: str = SECRET_KEY,
    region: str = REGION,
) -> str | None:
    """Recompute the SigV4 signature of a request as received; None when it checks out."""
    match = _AUTH.fullmatch(headers.get("authorization", ""))
    if match is None:
        return f"malformed authorization header {headers.get('authorization')!r}"
    if (match["region"], match["service"]) != (region, "bedrock"):
        return f"wrong credential scope {match['region']}/{match['service']}"
    amz_date = headers.get("x-amz-date", "")
    signed = match["signed"].split(";")
    if match["date"] != amz_date[:8] or not {"host", "x-amz-date"} <= set(signed):
        return "date or signed headers are wrong"
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: headers[name] for name in signed}
    )
    request.context["timestamp"] = amz_date
    token = headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(match["key"], secret, token), "bedrock", region)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return None if expected == match["signature"] else "signature mismatch"


def test_build_request_is_signed_for_the_exact_url_and_body():
    provider = _provider(
        access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, session_token=SESSION_TOKEN
    )
    wire = provider.build_request(_ctx(), _request(stream=True))
    segment = wire.url.split("/")[4]
    assert wire.url.startswith(f"https://bedrock-runtime.{REGION}.amazonaws.com/model/")
    assert wire.url.endswith("/converse-stream") and "%2F" in segment
    assert unquote(segment) == MODEL_ARN
    assert wire.headers["x-amz-security-token"] == SESSION_TOKEN
    assert wire.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    sent = {**wire.headers, "host": f"bedrock-runtime.{REGION}.amazonaws.com"}  # the client adds it
    assert signature_problem("POST", wire.url, sent, wire.body) is None
    tampered = wire.body.replace(b"hi", b"ho")
    assert signature_problem("POST", wire.url, sent, tampered) == "signature mismatch"
    assert json.loads(wire.body) == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


def test_bearer_api_key_and_passthrough():
    wire = _provider(api_key="bedrock-api-key-1").build_request(_ctx(), _request())
    assert wire.headers["authorization"] == "Bearer bedrock-api-key-1"
    assert wire.url.endswith("/converse") and "x-amz-date" not in wire.headers
    wire = _provider(auth="passthrough").build_request(_ctx("client-key"), _request())
    assert wire.headers["authorization"] == "Bearer client-key"


def test_additional_model_request_fields():
    provider = _provider(api_key="k", additional_model_request_fields={"top_k": 40})
    body = json.loads(provider.build_request(_ctx(), _request()).body)
    assert body["additionalModelRequestFields"] == {"top_k": 40}


def test_config_needs_some_credentials(tmp_path):
    config = write_config(
        tmp_path,
        """
        plugins: [bedrock]
        backends:
          br: {provider: bedrock, region: us-east-1}
        routes: [{match: {model: "*"}, backend: br}]
    """,
    )
    with pytest.raises(ConfigError, match="access_key_id"):
        load_gateway(str(config))
    half = write_config(
        tmp_path,
        """
        plugins: [bedrock]
        backends:
          br: {provider: bedrock, region: us-east-1, access_key_id: AKIA}
        routes: [{match: {model: "*"}, backend: br}]
    """,
        "half.yaml",
    )
    with pytest.raises(ConfigError, match="go together"):
        load_gateway(str(half))


# --------------------------------------------------------------------------- end to end


class BedrockUpstream:
    """A Bedrock Runtime stand-in: checks path and SigV4, answers the scripted `answer`."""

    def __init__(self) -> None:
        self.server = UpstreamServer(self.behave)
        self.problems: list[str] = []
        self.answer: dict[str, Any] = TEXT_ANSWER
        self.error: Reply | None = None
        self.stream_override: bytes | None = None

    def behave(self, received: Received) -> Reply:
        problem = self._check(received)
        if problem:
            self.problems.append(problem)
            return _aws_error(403, "InvalidSignatureException", problem)
        if self.error is not None:
            return self.error
        if received.path.endswith("/converse-stream"):
            data = self.stream_override or stream_bytes(self.answer)
            pieces = [data[i : i + 29] for i in range(0, len(data), 29)]
            return Reply(headers={"content-type": EVENTSTREAM}, chunks=pieces)
        return Reply(body=json.dumps(self.answer).encode())

    def _check(self, received: Received) -> str | None:
        match = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream)", received.path)
        if match is None or unquote(match[1]) != MODEL_ARN:
            return f"unexpected path {received.path}"
        url = f"http://{received.headers['host']}{received.path}"
        return signature_problem("POST", url, received.headers, received.body)


def _aws_error(status: int, kind: str, message: str, **headers: str) -> Reply:
    return Reply(
        status=status,
        body=json.dumps({"message": message}).encode(),
        headers={"content-type": "application/json", "x-amzn-errortype": kind, **headers},
    )


@pytest.fixture(scope="module")
def bedrock_env(tmp_path_factory) -> Iterator[tuple[BedrockUpstream, RunningGateway]]:
    upstream = BedrockUpstream()
    directory = tmp_path_factory.mktemp("bedrock")
    config = write_config(
        directory,
        f"""
        plugins: [bedrock]
        backends:
          br:
            provider: bedrock
            base_url: "http://127.0.0.1:{upstream.server.port}"
            model: "{MODEL_ARN}"
            region: {REGION}
            access_key_id: "${{TEST_BEDROCK_KEY_ID}}"
            secret_access_key: "${{TEST_BEDROCK_SECRET}}"
            session_token: "{SESSION_TOKEN}"
        routes:
          - {{match: {{model: "claude-*"}}, backend: br}}
    """,
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("TEST_BEDROCK_KEY_ID", ACCESS_KEY)
    mp.setenv("TEST_BEDROCK_SECRET", SECRET_KEY)
    try:
        with upstream.server, run_gateway(config) as gw:
            yield upstream, gw
    finally:
        mp.undo()


@pytest.fixture
def bedrock(bedrock_env) -> Iterator[tuple[BedrockUpstream, openai.OpenAI]]:
    upstream, gw = bedrock_env
    upstream.answer, upstream.error, upstream.stream_override = TEXT_ANSWER, None, None
    upstream.problems.clear()
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0, timeout=30)
    with client:
        yield upstream, client
    assert upstream.problems == []


ASK = {"model": "claude-sonnet", "messages": [{"role": "user", "content": "Weather in Paris?"}]}


def _sdk_answer(completion: Any) -> dict[str, Any]:
    return completion.model_dump(exclude_none=True)


def _sdk_chunks(stream: Any) -> list[dict[str, Any]]:
    return [chunk.model_dump(exclude_none=True) for chunk in stream]


def test_e2e_text(bedrock):
    upstream, client = bedrock
    answer = client.chat.completions.create(**ASK, max_tokens=100, temperature=0.5)
    assert answer.choices[0].message.content == "Paris is the capital of France."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 29
    assert answer.model == MODEL_ARN
    sent = upstream.server.last
    assert sent.headers["x-amz-security-token"] == SESSION_TOKEN
    assert sent.json["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.5}
    assert "sk-client" not in json.dumps(sent.headers)


@pytest.mark.parametrize("answer", [TEXT_ANSWER, TOOL_ANSWER], ids=["text", "tools"])
def test_e2e_stream_equals_non_streamed(bedrock, answer):
    upstream, client = bedrock
    upstream.answer = answer
    whole = _sdk_answer(client.chat.completions.create(**ASK, tools=[WEATHER_TOOL]))
    chunks = _sdk_chunks(
        client.chat.completions.create(
            **ASK, tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True}
        )
    )
    assert upstream.server.last.path.endswith("/converse-stream")
    assert upstream.server.last.json["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    streamed = reassemble([{"choices": [], **c} for c in chunks])
    for call in streamed["message"].get("tool_calls") or []:
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    assert streamed == _normalized(whole)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert chunks[-2]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]


def test_e2e_stream_without_usage_request(bedrock):
    _, client = bedrock
    chunks = _sdk_chunks(client.chat.completions.create(**ASK, stream=True))
    assert all(c["choices"] for c in chunks) and "usage" not in chunks[-1]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
        "Paris is the capital of France."
    )


def test_e2e_tool_call_round_trip(bedrock):
    upstream, client = bedrock
    upstream.answer = TOOL_ANSWER
    first = client.chat.completions.create(**ASK, tools=[WEATHER_TOOL], tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == ("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert first.usage.prompt_tokens_details.cached_tokens == 1024
    upstream.answer = TEXT_ANSWER
    follow_up = [
        *ASK["messages"],
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    client.chat.completions.create(model="claude-sonnet", messages=follow_up, tools=[WEATHER_TOOL])
    sent = upstream.server.last.json
    assert sent["messages"][1]["content"][1]["toolUse"]["input"] == {
        "city": "Paris",
        "unit": "celsius",
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": call.id, "content": [{"text": "18C"}]}}],
    }


def test_e2e_throttling_is_kept_as_429(bedrock):
    upstream, client = bedrock
    upstream.error = _aws_error(
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
        **{"retry-after": "3"},
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**ASK)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert "Too many requests" in caught.value.message


def test_e2e_denied_credentials_are_502_without_secrets(bedrock):
    upstream, client = bedrock
    upstream.error = _aws_error(
        403,
        "UnrecognizedClientException",
        f"The security token included in the request is invalid ({ACCESS_KEY}).",
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**ASK)
    assert caught.value.status_code == 502
    text = caught.value.response.text
    assert "upstream_auth_failed" in text and ACCESS_KEY not in text and SECRET_KEY not in text


def test_e2e_exception_mid_stream_reaches_the_client(bedrock):
    upstream, client = bedrock
    upstream.stream_override = b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Par"}}),
            exception_frame("modelStreamErrorException", "The model crashed."),
        ]
    )
    seen: list[dict[str, Any]] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(**ASK, stream=True):
            seen.append(chunk.model_dump(exclude_none=True))
    assert "The model crashed." in str(caught.value)
    assert [c["choices"][0]["delta"].get("content") for c in seen] == ["", "Par"]
