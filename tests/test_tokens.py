"""Offline token counting: tiktoken's documented token ids and counts, OpenAI's cookbook chat
and tool counts, no network at import or count time, and the three request-body shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from modelway import tokens
from modelway.tokens import (
    CL100K,
    O200K,
    count_text,
    encoding_name,
    estimate_chat,
    estimate_gemini,
    estimate_messages,
    get_encoding,
)

# OpenAI cookbook, "How to count tokens with tiktoken": token ids per encoding.
DOCUMENTED = [
    ("tiktoken is great!", CL100K, [83, 1609, 5963, 374, 2294, 0]),
    ("antidisestablishmentarianism", CL100K, [519, 85342, 34500, 479, 8997, 2191]),
    ("antidisestablishmentarianism", O200K, [493, 129901, 376, 160388, 21203, 2367]),
    ("2 + 2 = 4", CL100K, [17, 489, 220, 17, 284, 220, 19]),
    ("2 + 2 = 4", O200K, [17, 659, 220, 17, 314, 220, 19]),
    ("お誕生日おめでとう", CL100K, [33334, 45918, 243, 21990, 9080, 33334, 62004, 16556, 78699]),
    ("お誕生日おめでとう", O200K, [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]),
    ("hello world", CL100K, [15339, 1917]),
    ("hello world", O200K, [24912, 2375]),
]

# The cookbook's chat example; it reports 129 prompt tokens for gpt-3.5-turbo and gpt-4 and
# 124 for gpt-4o and gpt-4o-mini, matching the API's usage.
COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that "
     "translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user",
     "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant",
     "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more "
     "bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean "
     "for the client deliverable."},
]
# The cookbook's tool example: 105 prompt tokens for gpt-3.5-turbo and gpt-4, 101 for gpt-4o.
COOKBOOK_TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return",
                 "enum": ["celsius", "fahrenheit"]},
    }, "required": ["location"]},
}}]
COOKBOOK_TOOL_MESSAGES = [
    {"role": "system",
     "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(("text", "encoding", "ids"), DOCUMENTED)
def test_documented_token_ids(text, encoding, ids):
    assert get_encoding(encoding).encode(text) == ids
    model = "gpt-4" if encoding == CL100K else "gpt-4o"
    assert count_text(text, model) == len(ids)


def test_special_token_strings_count_as_text():
    assert count_text("<|endoftext|>", "gpt-4o") > 1
    assert count_text("") == 0


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-4o", O200K), ("gpt-4o-mini-2024-07-18", O200K), ("gpt-4.1", O200K),
     ("gpt-5-mini", O200K), ("o3", O200K), ("o4-mini", O200K), ("gpt-4", CL100K),
     ("gpt-4-turbo", CL100K), ("gpt-4-0613", CL100K), ("gpt-3.5-turbo", CL100K),
     ("gpt-35-turbo", CL100K), ("text-embedding-3-small", CL100K), ("openai/gpt-4", CL100K),
     ("claude-sonnet-4-5", O200K), ("gemini-2.5-flash", O200K), (None, O200K)],
)
def test_encoding_for_model(model, expected):
    assert encoding_name(model) == expected


def test_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="unknown encoding"):
        get_encoding("p50k_base")


@pytest.mark.parametrize(("model", "expected"),
                         [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4-0613", 129),
                          ("gpt-4o", 124), ("gpt-4o-mini", 124)])
def test_cookbook_chat_counts(model, expected):
    assert estimate_chat({"model": model, "messages": COOKBOOK_MESSAGES}) == expected


@pytest.mark.parametrize(("model", "expected"),
                         [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101),
                          ("gpt-4o-mini", 101)])
def test_cookbook_tool_counts(model, expected):
    body = {"model": model, "messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    assert estimate_chat(body) == expected


def test_no_network_at_import_or_count_time(tmp_path):
    """A fresh interpreter with every socket connect refused, a dead proxy and an empty
    tiktoken cache imports, loads both vocabularies and counts; nothing is cached on disk."""
    script = textwrap.dedent("""
        import socket
        attempts = []
        def refuse(self, address, *args):
            attempts.append(address)
            raise OSError("network access during a token count")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = lambda *a, **k: refuse(None, a)
        from modelway import tokens
        tokens.preload()
        n = tokens.count_text("hello world", "gpt-4o") + tokens.count_text("x" * 50000, "gpt-4")
        n += tokens.estimate_chat({"model": "gpt-4o", "messages": [{"role": "user",
                                                                     "content": "hi"}]})
        print(n, attempts)
    """)
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "TIKTOKEN_CACHE_DIR": str(cache), "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    count, attempts = result.stdout.split(" ", 1)
    assert int(count) > 0
    assert attempts.strip() == "[]"
    assert list(cache.iterdir()) == []
    assert not (tmp_path / "data-gym-cache").exists()


def corpus(size: int) -> str:
    """Deterministic, varied text: prose, code, numbers and JSON."""
    parts = [
        "The gateway routes each request to a backend and records its cost. ",
        "def handler(request):\n    return {'status': 200, 'body': request.body[::-1]}\n",
        json.dumps({"id": 12345, "items": [1.5, 2.25, "three"], "ok": True}),
        "Prix: 12,50 € ; délai: 3 jours. Größe: 42. Задержка: 7 мс. ",
    ]
    out, index = [], 0
    while sum(map(len, out)) < size:
        out.append(parts[index % len(parts)] + f" #{index}\n")
        index += 1
    return "".join(out)[:size]


def test_long_texts_are_sampled_close_to_the_exact_count():
    text = corpus(120_000)
    exact = count_text(text, "gpt-4o", exact_limit=0)
    assert exact == len(get_encoding(O200K).encode_ordinary(text))
    sampled = count_text(text, "gpt-4o")
    assert abs(sampled - exact) / exact < 0.05
    short = corpus(tokens.EXACT_LIMIT)
    assert count_text(short, "gpt-4o") == count_text(short, "gpt-4o", exact_limit=0)


def test_a_large_chat_body_is_estimated_within_budget():
    messages = [{"role": "user" if i % 2 else "assistant", "content": corpus(4_000 + i)}
                for i in range(40)]
    body = {"model": "gpt-4o", "messages": messages}
    exact = estimate_chat(body, exact_limit=0)
    assert abs(estimate_chat(body) - exact) / exact < 0.05


def test_chat_part_lists_images_and_tool_calls():
    as_string = {"messages": [{"role": "user", "content": "hello world"}]}
    as_parts = {"messages": [{"role": "user", "content": [{"type": "text",
                                                           "text": "hello world"}]}]}
    base = estimate_chat(as_string)
    assert base == 3 + 1 + 2 + 3  # message overhead, "user", "hello world", reply priming
    assert estimate_chat(as_parts) == base
    low = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                              "detail": "low"}}
    high = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with_images = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "hello world"}, low, high]}]}
    assert estimate_chat(with_images) == base + 85 + 765
    call = {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "get_current_weather", "arguments": '{"location": "Paris"}'}}]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}
    with_tools = {"messages": [as_string["messages"][0], call, result]}
    assert estimate_chat(with_tools) > base + 2 * 3 + count_text('{"location": "Paris"}')


def test_chat_bodies_that_are_not_well_formed_do_not_raise():
    assert estimate_chat({}) == 3
    assert estimate_chat({"messages": "hello"}) == 3
    assert estimate_chat({"messages": [None, 1, {"content": None}]}) == 3 + 3
    assert estimate_chat({"messages": [], "tools": [{"type": "function"}, "x"]}) == 3
    assert estimate_chat({"model": 5, "messages": [{"role": "user", "content": [1, {}]}]}) == 7


def test_anthropic_messages_body():
    plain = {"model": "claude-sonnet-4-5", "messages": [{"role": "user",
                                                         "content": "hello world"}]}
    base = estimate_messages(plain)
    assert base == 3 + 2 + 3
    blocks = {"messages": [{"role": "user", "content": [{"type": "text",
                                                         "text": "hello world"}]}]}
    assert estimate_messages(blocks) == base
    system_text = estimate_messages({**plain, "system": "Answer briefly."})
    system_blocks = estimate_messages(
        {**plain, "system": [{"type": "text", "text": "Answer briefly.",
                              "cache_control": {"type": "ephemeral"}}]})
    assert system_text == system_blocks == base + count_text("Answer briefly.")
    tool = {"name": "get_weather", "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    with_tools = estimate_messages({**plain, "tools": [tool]})
    assert with_tools > base + 346
    forced = estimate_messages({**plain, "tools": [tool],
                                "tool_choice": {"type": "tool", "name": "get_weather"}})
    assert with_tools - forced == 346 - 313
    turn = {"messages": [
        plain["messages"][0],
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "4 degrees"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "AAAA"}}]},
    ]}
    assert estimate_messages(turn) > base + 2 * 3 + 1600 + count_text("4 degrees")
    assert estimate_messages({}) == 3
    assert estimate_messages({"system": 7, "messages": [{"content": 9}]}) == 6


def test_gemini_generate_content_body():
    plain = {"contents": [{"role": "user", "parts": [{"text": "hello world"}]}]}
    base = estimate_gemini(plain)
    assert base == 3 + 2 + 3
    camel = {**plain, "systemInstruction": {"parts": [{"text": "Answer briefly."}]}}
    snake = {**plain, "system_instruction": {"parts": [{"text": "Answer briefly."}]}}
    assert estimate_gemini(camel) == estimate_gemini(snake) == base + count_text(
        "Answer briefly.")
    declaration = {"name": "get_weather", "description": "Weather for a city",
                   "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}
    with_tools = estimate_gemini({**plain, "tools": [{"functionDeclarations": [declaration]}]})
    assert with_tools == estimate_gemini(
        {**plain, "tools": [{"function_declarations": [declaration]}]})
    assert with_tools > base + 10
    turn = {"contents": [
        plain["contents"][0],
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                      "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 4}}},
            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
    ]}
    assert estimate_gemini(turn) > base + 2 * 3 + 258
    assert estimate_gemini({}) == 3
    assert estimate_gemini({"contents": [{"parts": "x"}], "tools": [None]}) == 6
