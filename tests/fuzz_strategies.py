"""Hypothesis strategies for the fuzz suite: request bodies of every ingress API, and the
HTTP layer around them.

A body is built field by field from a plausible request of its API, where each field is
either a value of the right kind or any JSON value (a lone surrogate, a huge integer, a
scalar where a list belongs, a deep nesting...), plus fields nobody knows. `wire_body` then
sends it as JSON, or breaks it as bytes (cut short, not UTF-8, NaN, not an object).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.fuzzkit import MODELS

Json = Any

# Texts that broke gateways before: lone surrogates, NUL, RTL marks, long runs, emoji, a card.
NASTY_TEXT = (
    "hello",
    "x" * 5000,
    "😀" * 3,
    "4111 1111 1111 1111",
    "\x00",
    "\u202e",
    "\ufeff",
    "",
    " ",
    "{{template}}",
    "${VAR}",
    "\r\n\r\n",
    "data: [DONE]\n\n",
)
LONE_SURROGATES = ("\ud800", "a\udfffb", "\udbff")
NASTY_NUMBERS = (0, -1, 2**63, -(2**63) - 1, 10**40, 1e308, -0.0, 0.5, 1.5e-300)

plain_texts = st.one_of(st.text(max_size=40), st.text(st.characters(codec="utf-8"), max_size=20))
texts = st.integers(0, 39).flatmap(
    lambda n: (
        st.sampled_from(LONE_SURROGATES)
        if n == 17
        else st.sampled_from(NASTY_TEXT)
        if n % 4 == 1
        else plain_texts
    )
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(NASTY_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
models = st.one_of(
    st.sampled_from(MODELS),
    st.sampled_from(MODELS),
    st.sampled_from(MODELS),
    st.sampled_from(MODELS).map(lambda m: m + "-x"),
    texts,
)


def either(good: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    """Mostly a value of the right kind (nine times in ten), sometimes anything."""
    return st.integers(0, 9).flatmap(lambda n: json_values if n == 4 else good)


def rarely(strategy: st.SearchStrategy[Json], otherwise: Json) -> st.SearchStrategy[Json]:
    """`strategy` one time in eight, else `otherwise`."""
    return st.integers(0, 7).flatmap(lambda n: strategy if n == 3 else st.just(otherwise))


def body(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Json]:
    """A dict of `required` fields (sometimes missing) and a few `optional` ones, each drawn
    with `either`, plus sometimes fields no API knows."""
    fields = st.fixed_dictionaries(
        {k: either(v) for k, v in required.items()},
        optional={k: either(v) for k, v in optional.items()},
    )
    unknown = rarely(
        st.dictionaries(
            st.sampled_from(["x_extra", "metadata", "\ud800", ""]),
            json_values,
            min_size=1,
            max_size=2,
        ),
        {},
    )
    dropped = rarely(st.sets(st.sampled_from(sorted(required)), min_size=1, max_size=1), set())

    def build(parts: tuple[dict[str, Any], dict[str, Any], set[str]]) -> dict[str, Any]:
        found, extra, drop = parts
        return {**extra, **{k: v for k, v in found.items() if k not in drop}}

    return st.tuples(fields, unknown, dropped).map(build)


def dict_of(required: dict[str, Any], optional: dict[str, Any] | None = None) -> Any:
    return st.fixed_dictionaries(
        {k: either(v) for k, v in required.items()},
        optional={k: either(v) for k, v in (optional or {}).items()},
    )


small_ints = st.integers(min_value=-2, max_value=5000)
unit = st.floats(min_value=-1, max_value=3)
data_urls = st.sampled_from(
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "data:image/png;base64,!!!",
        "data:,",
        "data:image/png",
        "https://example.invalid/x.png",
        "data:text/plain;base64," + "QQ" * 10,
        "",
    ]
)
schemas = st.one_of(
    st.just({"type": "object", "properties": {"q": {"type": "string"}}}), json_values
)

# ----------------------------------------------------------------------------- OpenAI chat

oa_parts = st.one_of(
    dict_of({"type": st.just("text"), "text": texts}),
    dict_of(
        {"type": st.just("image_url"), "image_url": dict_of({"url": data_urls}, {"detail": texts})}
    ),
    dict_of(
        {"type": st.just("input_audio"), "input_audio": dict_of({"data": texts, "format": texts})}
    ),
    dict_of(
        {"type": st.just("file"), "file": dict_of({}, {"file_data": data_urls, "filename": texts})}
    ),
)
oa_tool_calls = st.lists(
    dict_of(
        {
            "id": texts,
            "type": st.just("function"),
            "function": dict_of(
                {"name": texts, "arguments": st.one_of(texts, st.just('{"q": 1}'))}
            ),
        }
    ),
    max_size=2,
)
oa_messages = st.lists(
    dict_of(
        {
            "role": st.sampled_from(
                ["user", "user", "assistant", "system", "developer", "tool", "function"]
            ),
            "content": st.one_of(texts, st.lists(oa_parts, max_size=3), st.none()),
        },
        {
            "tool_calls": oa_tool_calls,
            "tool_call_id": texts,
            "name": texts,
            "reasoning_content": texts,
        },
    ),
    min_size=1,
    max_size=4,
)
oa_tools = st.lists(
    dict_of(
        {
            "type": st.just("function"),
            "function": dict_of(
                {"name": texts},
                {"parameters": schemas, "description": texts, "strict": st.booleans()},
            ),
        }
    ),
    max_size=2,
)
SAMPLING = {
    "temperature": unit,
    "top_p": unit,
    "max_tokens": small_ints,
    "seed": st.integers(),
    "stop": st.one_of(texts, st.lists(texts, max_size=5)),
    "user": texts,
}
openai_chat = body(
    {"model": models, "messages": oa_messages},
    {
        **SAMPLING,
        "stream": st.booleans(),
        "tools": oa_tools,
        "n": small_ints,
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required"]),
            dict_of({"type": st.just("function"), "function": dict_of({"name": texts})}),
        ),
        "response_format": st.one_of(
            dict_of({"type": st.sampled_from(["text", "json_object"])}),
            dict_of(
                {
                    "type": st.just("json_schema"),
                    "json_schema": dict_of({"name": texts, "schema": schemas}),
                }
            ),
        ),
        "stream_options": dict_of({"include_usage": st.booleans()}),
        "logprobs": st.booleans(),
        "top_logprobs": small_ints,
        "max_completion_tokens": small_ints,
        "reasoning_effort": texts,
        "parallel_tool_calls": st.booleans(),
        "logit_bias": json_values,
    },
)
openai_embeddings = body(
    {
        "model": models,
        "input": st.one_of(texts, st.lists(texts, max_size=3), st.lists(st.integers(), max_size=4)),
    },
    {
        "encoding_format": st.sampled_from(["float", "base64", "x"]),
        "dimensions": small_ints,
        "user": texts,
    },
)

# ----------------------------------------------------------------------------- Responses

resp_content = st.one_of(
    texts,
    st.lists(
        st.one_of(
            dict_of({"type": st.sampled_from(["input_text", "output_text"]), "text": texts}),
            dict_of({"type": st.just("input_image"), "image_url": data_urls}),
            dict_of({"type": st.just("input_file"), "file_data": data_urls}, {"filename": texts}),
        ),
        max_size=3,
    ),
)
resp_items = st.lists(
    st.one_of(
        dict_of(
            {
                "role": st.sampled_from(["user", "assistant", "system", "developer"]),
                "content": resp_content,
            },
            {"type": st.just("message")},
        ),
        dict_of(
            {"type": st.just("function_call"), "call_id": texts, "name": texts, "arguments": texts}
        ),
        dict_of({"type": st.just("function_call_output"), "call_id": texts, "output": texts}),
        dict_of(
            {"type": st.just("reasoning"), "summary": json_values}, {"encrypted_content": texts}
        ),
    ),
    min_size=1,
    max_size=4,
)
openai_responses = body(
    {"model": models, "input": st.one_of(texts, resp_items)},
    {
        "stream": st.booleans(),
        "instructions": texts,
        "max_output_tokens": small_ints,
        "temperature": unit,
        "store": st.booleans(),
        "previous_response_id": texts,
        "tools": st.lists(
            dict_of(
                {"type": st.sampled_from(["function", "web_search", "x"]), "name": texts},
                {"parameters": schemas},
            ),
            max_size=2,
        ),
        "tool_choice": st.one_of(texts, dict_of({"type": st.just("function"), "name": texts})),
        "reasoning": dict_of({}, {"effort": texts, "summary": texts}),
        "text": dict_of(
            {}, {"format": dict_of({"type": texts}, {"schema": schemas, "name": texts})}
        ),
        "include": st.lists(texts, max_size=2),
        "truncation": texts,
        "metadata": json_values,
    },
)

# ----------------------------------------------------------------------------- Anthropic

an_blocks = st.lists(
    st.one_of(
        dict_of(
            {"type": st.just("text"), "text": texts}, {"cache_control": dict_of({"type": texts})}
        ),
        dict_of(
            {
                "type": st.just("image"),
                "source": dict_of(
                    {
                        "type": st.sampled_from(["base64", "url"]),
                        "media_type": texts,
                        "data": texts,
                    },
                    {"url": data_urls},
                ),
            }
        ),
        dict_of({"type": st.just("tool_use"), "id": texts, "name": texts, "input": json_values}),
        dict_of(
            {
                "type": st.just("tool_result"),
                "tool_use_id": texts,
                "content": st.one_of(
                    texts, st.lists(dict_of({"type": st.just("text"), "text": texts}), max_size=2)
                ),
            },
            {"is_error": st.booleans()},
        ),
        dict_of({"type": st.just("thinking"), "thinking": texts, "signature": texts}),
        dict_of(
            {
                "type": st.just("document"),
                "source": dict_of({"type": texts, "data": texts, "media_type": texts}),
            }
        ),
    ),
    max_size=3,
)
an_messages = st.lists(
    dict_of(
        {
            "role": st.sampled_from(["user", "user", "assistant", "system"]),
            "content": st.one_of(texts, an_blocks),
        }
    ),
    min_size=1,
    max_size=4,
)
AN_OPTIONAL = {
    "system": st.one_of(texts, an_blocks),
    "tools": st.lists(
        dict_of({"name": texts, "input_schema": schemas}, {"description": texts, "type": texts}),
        max_size=2,
    ),
    "tool_choice": dict_of(
        {"type": st.sampled_from(["auto", "any", "tool", "none"])}, {"name": texts}
    ),
    "thinking": dict_of(
        {"type": st.sampled_from(["enabled", "disabled"])}, {"budget_tokens": small_ints}
    ),
}
anthropic_messages = body(
    {"model": models, "max_tokens": small_ints, "messages": an_messages},
    {
        **AN_OPTIONAL,
        "stream": st.booleans(),
        "temperature": unit,
        "top_p": unit,
        "top_k": small_ints,
        "stop_sequences": st.lists(texts, max_size=3),
        "metadata": dict_of({}, {"user_id": texts}),
        "service_tier": texts,
    },
)
anthropic_count = body({"model": models, "messages": an_messages}, AN_OPTIONAL)

# ----------------------------------------------------------------------------- Gemini

ge_parts = st.lists(
    st.one_of(
        dict_of({"text": texts}, {"thought": st.booleans(), "thoughtSignature": texts}),
        dict_of({"inlineData": dict_of({"mimeType": texts, "data": texts})}),
        dict_of({"inline_data": dict_of({"mime_type": texts, "data": texts})}),
        dict_of({"fileData": dict_of({"fileUri": texts}, {"mimeType": texts})}),
        dict_of({"functionCall": dict_of({"name": texts}, {"args": json_values, "id": texts})}),
        dict_of(
            {"functionResponse": dict_of({"name": texts, "response": json_values}, {"id": texts})}
        ),
    ),
    max_size=3,
)
ge_contents = st.lists(
    dict_of(
        {"parts": ge_parts},
        {"role": st.sampled_from(["user", "user", "model", "function", "system"])},
    ),
    min_size=1,
    max_size=4,
)
ge_config = dict_of(
    {},
    {
        "temperature": unit,
        "topP": unit,
        "topK": small_ints,
        "maxOutputTokens": small_ints,
        "candidateCount": small_ints,
        "stopSequences": st.lists(texts, max_size=3),
        "seed": st.integers(),
        "responseMimeType": texts,
        "responseSchema": schemas,
        "responseJsonSchema": schemas,
        "responseModalities": st.lists(
            st.sampled_from(["TEXT", "IMAGE", "AUDIO", "x"]), max_size=2
        ),
        "thinkingConfig": dict_of(
            {}, {"thinkingBudget": small_ints, "includeThoughts": st.booleans()}
        ),
        "max_output_tokens": small_ints,
        "stop_sequences": st.lists(texts, max_size=2),
    },
)
ge_tools = st.lists(
    dict_of(
        {},
        {
            "functionDeclarations": st.lists(
                dict_of(
                    {"name": texts},
                    {"parameters": schemas, "description": texts, "parametersJsonSchema": schemas},
                ),
                max_size=2,
            ),
            "googleSearch": json_values,
            "codeExecution": json_values,
        },
    ),
    max_size=2,
)
gemini_generate = body(
    {"contents": ge_contents},
    {
        "generationConfig": ge_config,
        "generation_config": ge_config,
        "tools": ge_tools,
        "toolConfig": dict_of(
            {},
            {
                "functionCallingConfig": dict_of(
                    {},
                    {
                        "mode": st.sampled_from(["AUTO", "ANY", "NONE", "VALIDATED", "x"]),
                        "allowedFunctionNames": st.lists(texts, max_size=2),
                    },
                )
            },
        ),
        "systemInstruction": st.one_of(dict_of({"parts": ge_parts}, {"role": texts}), texts),
        "system_instruction": dict_of({"parts": ge_parts}),
        "safetySettings": st.lists(dict_of({"category": texts, "threshold": texts}), max_size=2),
        "cachedContent": texts,
        "labels": json_values,
    },
)
gemini_count = body(
    {"contents": ge_contents},
    {
        "generateContentRequest": dict_of({"model": texts, "contents": ge_contents}),
        "systemInstruction": dict_of({"parts": ge_parts}),
        "tools": ge_tools,
    },
)

# ----------------------------------------------------------------------------- ingresses


def gemini_path(method: str) -> st.SearchStrategy[str]:
    suffix = "?alt=sse" if method == "streamGenerateContent" else ""
    return models.map(lambda m: f"/v1beta/models/{_path_safe(m)}:{method}{suffix}")


def _path_safe(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text) or "m"


INGRESSES: dict[str, tuple[str, Any, Any]] = {
    "openai.chat": ("openai", st.just("/v1/chat/completions"), openai_chat),
    "openai.embeddings": ("openai", st.just("/v1/embeddings"), openai_embeddings),
    "openai.responses": ("openai", st.just("/v1/responses"), openai_responses),
    "anthropic.messages": ("anthropic", st.just("/v1/messages"), anthropic_messages),
    "anthropic.count_tokens": ("anthropic", st.just("/v1/messages/count_tokens"), anthropic_count),
    "gemini.generate": ("gemini", gemini_path("generateContent"), gemini_generate),
    "gemini.stream": ("gemini", gemini_path("streamGenerateContent"), gemini_generate),
    "gemini.count_tokens": ("gemini", gemini_path("countTokens"), gemini_count),
}


def _dumps(value: Json) -> bytes:
    """JSON as a client would send it: lone surrogates escaped (`\\ud800`), big ints whole."""
    return json.dumps(value, allow_nan=True).encode()


def _broken(data: bytes) -> st.SearchStrategy[bytes]:
    cut = st.integers(0, max(0, len(data) - 1)).map(lambda n: data[:n])
    spliced = st.tuples(st.integers(0, len(data)), st.binary(min_size=1, max_size=4)).map(
        lambda t: data[: t[0]] + t[1] + data[t[0] :]
    )
    raw_surrogate = st.just(data.replace(b'"', b'"\xed\xa0\x80', 1))
    return st.one_of(cut, spliced, raw_surrogate, st.just(data.replace(b"0", b"NaN", 1)))


def wire_body(values: st.SearchStrategy[Json]) -> st.SearchStrategy[bytes]:
    """Bytes of a body: mostly the value as JSON, sometimes broken, sometimes not an object."""
    as_json = values.map(_dumps)
    broken = as_json.flatmap(_broken)
    other = st.one_of(
        json_values.map(_dumps),
        st.binary(max_size=40),
        st.sampled_from([b"", b"null", b"[]", b"{}", b'{"a":' * 2000]),
    )
    return st.integers(0, 9).flatmap(lambda n: broken if n == 4 else other if n == 5 else as_json)
