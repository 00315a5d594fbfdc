# ruff: noqa: E501 (wire fixtures are kept byte for byte as published)
"""Anthropic Messages API wire fixtures, byte for byte as published.

The SSE streams are the official SDK's own test fixtures (anthropics/anthropic-sdk-python,
tests/lib/streaming/fixtures/*.txt); the text message is the recorded API answer in the SDK's
tests/lib/_parse snapshot; the tool_use message is the message the SDK accumulates from
`tool_use_response.txt`; error bodies follow Anthropic's Errors reference. The fake upstream
that speaks the format is the test kit's `modelway.testing.fake_anthropic`; what it produces is
validated against the official SDK's types in the tests.
"""

from __future__ import annotations

from typing import Any

# --------------------------------------------------------------------------- SDK fixtures
# anthropics/anthropic-sdk-python tests/lib/streaming/fixtures/basic_response.txt
BASIC_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK","type":"message","role":"assistant","content":[],"model":"claude-3-opus-latest","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}}

event: message_stop
data: {"type":"message_stop"}"""

# anthropics/anthropic-sdk-python tests/lib/streaming/fixtures/tool_use_response.txt
TOOL_USE_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_019Q1hrJbZG26Fb9BQhrkHEr","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'ll check the current weather in Paris for you."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","caller":{"type":"direct"},"input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"locati"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\\": \\"P"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ar"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":65}}

event: message_stop
data: {"type":"message_stop"}"""

# anthropics/anthropic-sdk-python tests/lib/streaming/fixtures/refusal_response.txt
REFUSAL_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_01RefusalTestMessage123456789","type":"message","role":"assistant","content":[],"model":"claude-opus-4-7","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"refusal","stop_sequence":null,"stop_details":{"type":"refusal","category":"cyber","explanation":"This request was refused due to policy."}},"usage":{"output_tokens":120,"output_tokens_details":{"thinking_tokens":67}}}

event: message_stop
data: {"type":"message_stop"}
"""

# anthropics/anthropic-sdk-python tests/lib/streaming/fixtures/missing_usage_response.txt
# (message_start without usage; cumulative input and cache counts arrive in message_delta)
LATE_USAGE_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_test","type":"message","role":"assistant","content":[],"model":"claude-test","stop_reason":null,"stop_sequence":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":11,"output_tokens":1,"cache_creation_input_tokens":3,"cache_read_input_tokens":5}}

event: message_stop
data: {"type":"message_stop"}

"""

# The recorded answer in the SDK's tests/lib/_parse/__inline_snapshot__/test_messages/
# TestSyncParse/bd7029d5-d8d4-4e06-be3a-2ac9c60803a6.json
TEXT_MESSAGE: dict[str, Any] = {
    "model": "claude-sonnet-4-5-20250929",
    "id": "msg_01T4jd6NyD9xGGtTPDC4ogy5",
    "type": "message",
    "role": "assistant",
    "content": [
        {
            "type": "text",
            "text": '{"items":[{"product_name":"Green Tea","price":5.50,"quantity":2},'
            '{"product_name":"Coffee","price":3.00,"quantity":1}],"total":14.0}',
        }
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 406,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 50,
        "service_tier": "standard",
        "inference_geo": "not_available",
    },
}

# The final message of TOOL_USE_STREAM, as the SDK's accumulator builds it.
TOOL_USE_MESSAGE: dict[str, Any] = {
    "id": "msg_019Q1hrJbZG26Fb9BQhrkHEr",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [
        {"type": "text", "text": "I'll check the current weather in Paris for you."},
        {
            "type": "tool_use",
            "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
            "name": "get_weather",
            "input": {"location": "Paris"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 377,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 65,
        "service_tier": "standard",
    },
}

# Error shapes from Anthropic's Errors reference (a top-level type "error", an error object
# with type and message, and a request_id).
NOT_FOUND_ERROR = {
    "type": "error",
    "error": {"type": "not_found_error", "message": "The requested resource could not be found."},
    "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
}
OVERLOADED_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
