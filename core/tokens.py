"""Offline prompt-token estimates for rate limiting and budgets, with OpenAI's tokenizer.

The tokenizer is `tiktoken` (OpenAI's, Rust, MIT) with the `o200k_base` and `cl100k_base`
vocabularies shipped in `modelway.data` (see its NOTICE.md): nothing is downloaded, tiktoken's
own download path (`tiktoken.get_encoding`, `TIKTOKEN_CACHE_DIR`) is never used, and each
vocabulary is checked against the SHA-256 tiktoken pins for it. Loading one takes about half
a second, once per process: call `preload()` at start-up to keep that off the request path.

Counting is exact up to `EXACT_LIMIT` characters of text per request. Beyond that it is a
calibrated estimate: `SAMPLES` evenly spread windows (EXACT_LIMIT characters in all) are
counted exactly and their tokens-per-character ratio is applied to the whole text. Measured
on prose, code, JSON, CJK and symbol tables of 20-128 KB: within about 5% of the exact count
(bytes/4 was off by up to 59%), at the cost of an 8 KB count (about 1 ms) whatever the size.
`count_text(..., exact_limit=0)` counts everything exactly (about 25 ms for 128 KB of prose).
Exact counts are remembered by hash (`_exact`): a system prompt is not counted every time.

- `count_text(text, model)`: tokens of one string (o200k_base unless the model is an older
  OpenAI model that uses cl100k_base).
- `estimate_chat(body)`: an OpenAI chat-completions body, with the per-message overhead and
  the tool-definition formula of OpenAI's cookbook ("How to count tokens with tiktoken").
- `estimate_messages(body)`: an Anthropic Messages body.
- `estimate_gemini(body)`: a Gemini generateContent body.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import tiktoken

EXACT_LIMIT = 8192
"""Characters counted exactly; longer texts are sampled (see the module docstring)."""
SAMPLES = 4
"""Windows a long text is sampled with."""

O200K = "o200k_base"
CL100K = "cl100k_base"

# tiktoken's definitions of the two encodings (tiktoken_ext/openai_public.py, MIT): the
# pre-tokenizer pattern, the special tokens and the SHA-256 of the vocabulary file.
_SPECS: dict[str, tuple[str, dict[str, int], str]] = {
    O200K: (
        "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    CL100K: (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
         "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
# OpenAI models still on cl100k_base; every other model (newer OpenAI models, and the other
# providers' models, whose tokenizers are not public) is estimated with o200k_base.
_CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")
_CL100K_EXACT = ("gpt-4",)

# OpenAI's cookbook: every message costs 3 tokens beyond its fields (<|start|>, role
# separator, <|end|>), a `name` 1 more, and every reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# Images: OpenAI bills a low-detail image 85 tokens; a high-detail one 85 + 170 per 512 px
# tile, 765 for a 1024x1024 image, which is assumed when the size is unknown. Anthropic
# bills about width*height/750 tokens, at most about 1,600; Gemini 258 per image (or tile).
OPENAI_IMAGE_LOW = 85
OPENAI_IMAGE_DEFAULT = 765
ANTHROPIC_IMAGE = 1600
GEMINI_IMAGE = 258
# Anthropic adds a tool-use system prompt when tools are sent: 346 tokens for tool_choice
# auto or none, 313 for any or tool (Claude 4 models, per Anthropic's pricing page).
ANTHROPIC_TOOLS_AUTO = 346
ANTHROPIC_TOOLS_FORCED = 313

CACHE_LONGEST, CACHE_ENTRIES = 16384, 8192
"""The longest text whose exact count is remembered (`_exact`), and how many are."""

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}
_counts: dict[tuple[str, int, int], int] = {}


def encoding_name(model: str | None) -> str:
    """The vocabulary a model's prompt is counted with (o200k_base unless known older)."""
    name = (model or "").rsplit("/", 1)[-1].lower()
    if name in _CL100K_EXACT or name.startswith(_CL100K_PREFIXES):
        return CL100K
    return O200K


def get_encoding(name: str = O200K) -> tiktoken.Encoding:
    """A tiktoken encoding built from the shipped vocabulary, once per process."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    with _lock:
        if name not in _encodings:
            _encodings[name] = _build(name)
        return _encodings[name]


def preload(*names: str) -> None:
    """Load the vocabularies now (default: both), so no request pays for it."""
    for name in names or (O200K, CL100K):
        get_encoding(name)


def _build(name: str) -> tiktoken.Encoding:
    if name not in _SPECS:
        raise ValueError(f"unknown encoding {name!r}; known: {', '.join(_SPECS)}")
    pattern, special, expected = _SPECS[name]
    packed = resources.files("modelway.data").joinpath(f"{name}.tiktoken.gz").read_bytes()
    raw = gzip.decompress(packed)
    if hashlib.sha256(raw).hexdigest() != expected:
        raise RuntimeError(f"modelway.data/{name}.tiktoken.gz does not match tiktoken's hash")
    fields = raw.split()
    ranks = dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]),
                     strict=True))
    return tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens=special)


def count_text(text: str, model: str | None = None, *, exact_limit: int | None = None) -> int:
    """Tokens in `text` for `model`: exact up to `exact_limit` (default `EXACT_LIMIT`)
    characters, sampled beyond (0: always exact). Special-token strings count as text."""
    if not text:
        return 0
    name = encoding_name(model)
    encoding = get_encoding(name)
    limit = EXACT_LIMIT if exact_limit is None else exact_limit
    if limit <= 0 or len(text) <= limit:
        return _exact(encoding, name, text)
    window = max(limit // SAMPLES, 1)
    span = len(text) - window
    counted = sum(
        len(encoding.encode_ordinary(text[start:start + window]))
        for start in (span * index // (SAMPLES - 1) for index in range(SAMPLES))
    )
    return round(counted * len(text) / (window * SAMPLES))


def _exact(encoding: tiktoken.Encoding, name: str, text: str) -> int:
    """The exact count of `text`, remembered (up to `CACHE_LONGEST` characters) by length and
    Python's keyed string hash: no text is kept; a collision only misjudges an estimate."""
    if len(text) > CACHE_LONGEST:
        return len(encoding.encode_ordinary(text))
    key = (name, len(text), hash(text))
    found = _counts.get(key)
    if found is None:
        if len(_counts) >= CACHE_ENTRIES:
            _counts.clear()
        found = _counts[key] = len(encoding.encode_ordinary(text))
    return found


class _Tally:
    """Texts and fixed token counts of one request; the texts are counted together, so the
    exact-or-sampled budget applies to the request, not to each message."""

    def __init__(self, model: str | None) -> None:
        self.model = model
        self.texts: list[str] = []
        self.fixed = 0

    def text(self, value: Any) -> None:
        if isinstance(value, str) and value:
            self.texts.append(value)
        elif value is not None and not isinstance(value, str):
            self.texts.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def total(self, exact_limit: int | None = None) -> int:
        limit = EXACT_LIMIT if exact_limit is None else exact_limit
        if limit <= 0 or sum(map(len, self.texts)) <= limit:
            name = encoding_name(self.model)
            encoding = get_encoding(name)
            counted = sum(_exact(encoding, name, text) for text in self.texts)
        else:
            counted = count_text("\n".join(self.texts), self.model, exact_limit=limit)
        return self.fixed + counted


def estimate_chat(body: Mapping[str, Any], *, exact_limit: int | None = None) -> int:
    """Prompt tokens of an OpenAI chat-completions body: `messages` (string or part-list
    contents, names, tool calls), `tools` (or legacy `functions`) and a JSON-schema
    `response_format`, with OpenAI's documented per-message and per-tool overheads."""
    model = body.get("model") if isinstance(body.get("model"), str) else None
    tally = _Tally(model)
    for message in _dicts(body.get("messages")):
        tally.fixed += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                _openai_parts(tally, value)
            elif key == "tool_calls":
                for call in _dicts(value):
                    function = _dict(call.get("function"))
                    tally.text(function.get("name"))
                    tally.text(function.get("arguments"))
            elif key == "function_call" and isinstance(value, dict):
                tally.text(value.get("name"))
                tally.text(value.get("arguments"))
            elif isinstance(value, str):
                tally.text(value)
                if key == "name":
                    tally.fixed += TOKENS_PER_NAME
    tally.fixed += REPLY_PRIMING
    functions = [tool.get("function") for tool in _dicts(body.get("tools"))]
    functions += list(_dicts(body.get("functions")))
    _openai_tools(tally, [f for f in functions if isinstance(f, dict)], model)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        tally.text(response_format["json_schema"])
    return tally.total(exact_limit)


def _openai_parts(tally: _Tally, parts: list[Any]) -> None:
    for part in _dicts(parts):
        kind = part.get("type")
        if kind == "text":
            tally.text(part.get("text"))
        elif kind == "image_url":
            image = _dict(part.get("image_url"))
            low = image.get("detail") == "low"
            tally.fixed += OPENAI_IMAGE_LOW if low else OPENAI_IMAGE_DEFAULT
        elif kind == "refusal":
            tally.text(part.get("refusal"))
        elif kind == "file":
            file = _dict(part.get("file"))
            tally.text(file.get("filename"))


def _openai_tools(tally: _Tally, functions: list[dict[str, Any]], model: str | None) -> None:
    """The cookbook's `num_tokens_for_tools`: 7 tokens per function (10 on gpt-4 and
    gpt-3.5), 3 to open the properties, 3 per property, 3 per enum item (-3 per enum), 12 to
    close; names, descriptions and types are counted as `name:description` lines."""
    if not functions:
        return
    older = encoding_name(model) == CL100K
    tally.fixed += 12
    for function in functions:
        tally.fixed += 10 if older else 7
        description = str(function.get("description") or "").removesuffix(".")
        tally.text(f"{function.get('name', '')}:{description}")
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if not isinstance(properties, dict) or not properties:
            continue
        tally.fixed += 3
        for key, spec in properties.items():
            tally.fixed += 3
            spec = spec if isinstance(spec, dict) else {}
            enum = spec.get("enum")
            if isinstance(enum, list):
                tally.fixed += -3 + 3 * len(enum)
                for item in enum:
                    tally.text(str(item))
            p_description = str(spec.get("description") or "").removesuffix(".")
            tally.text(f"{key}:{spec.get('type', '')}:{p_description}")
            nested = {k: v for k, v in spec.items() if k in ("properties", "items", "anyOf")}
            if nested:
                tally.text(nested)


def estimate_messages(body: Mapping[str, Any], *, exact_limit: int | None = None) -> int:
    """Prompt tokens of an Anthropic Messages body: `system`, `messages` (text, image,
    document, tool_use, tool_result, thinking blocks) and `tools`.

    An estimate with OpenAI's o200k_base tokenizer: Claude's tokenizer is not public, and
    Claude usually needs somewhat more tokens for the same text (Opus 4.7's tokenizer more
    still). Messages cost the OpenAI per-message overhead; tools add Anthropic's documented
    tool-use system prompt. `/v1/messages/count_tokens` gives the real count, online.
    """
    tally = _Tally(None)
    system = body.get("system")
    if isinstance(system, str):
        tally.text(system)
    else:
        _anthropic_blocks(tally, system)
    for message in _dicts(body.get("messages")):
        tally.fixed += TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            tally.text(content)
        else:
            _anthropic_blocks(tally, content)
    tally.fixed += REPLY_PRIMING
    tools = list(_dicts(body.get("tools")))
    if tools:
        choice = body.get("tool_choice")
        forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
        tally.fixed += ANTHROPIC_TOOLS_FORCED if forced else ANTHROPIC_TOOLS_AUTO
        for tool in tools:
            tally.text(tool.get("name"))
            tally.text(tool.get("description"))
            if "input_schema" in tool:
                tally.text(tool["input_schema"])
    return tally.total(exact_limit)


def _anthropic_blocks(tally: _Tally, blocks: Any) -> None:
    for block in _dicts(blocks):
        kind = block.get("type")
        if kind == "text":
            tally.text(block.get("text"))
        elif kind == "image":
            tally.fixed += ANTHROPIC_IMAGE
        elif kind == "document":
            source = _dict(block.get("source"))
            if source.get("type") == "text":
                tally.text(source.get("data"))
            elif source.get("type") == "content":
                _anthropic_blocks(tally, source.get("content"))
            else:  # a PDF: roughly one image per page, which the body does not tell
                tally.fixed += ANTHROPIC_IMAGE
        elif kind == "tool_use":
            tally.text(block.get("name"))
            tally.text(block.get("input"))
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                tally.text(content)
            else:
                _anthropic_blocks(tally, content)
        elif kind == "thinking":
            tally.text(block.get("thinking"))


def estimate_gemini(body: Mapping[str, Any], *, exact_limit: int | None = None) -> int:
    """Prompt tokens of a Gemini generateContent body: `systemInstruction`, `contents`
    (text, inline or file data, function calls and responses, code) and `tools`
    (function declarations), camelCase or snake_case.

    An estimate with OpenAI's o200k_base tokenizer: Gemini's tokenizer is not shipped here
    (`countTokens` gives the real count, online). Images count 258 tokens each.
    """
    tally = _Tally(None)
    system = _get(body, "systemInstruction", "system_instruction")
    if isinstance(system, dict):
        _gemini_parts(tally, system.get("parts"))
    for content in _dicts(body.get("contents")):
        tally.fixed += TOKENS_PER_MESSAGE
        _gemini_parts(tally, content.get("parts"))
    tally.fixed += REPLY_PRIMING
    for tool in _dicts(body.get("tools")):
        declarations = _get(tool, "functionDeclarations", "function_declarations")
        for declaration in _dicts(declarations):
            tally.text(declaration)
    return tally.total(exact_limit)


def _gemini_parts(tally: _Tally, parts: Any) -> None:
    for part in _dicts(parts):
        if "text" in part:
            tally.text(part.get("text"))
        elif _get(part, "inlineData", "inline_data") or _get(part, "fileData", "file_data"):
            tally.fixed += GEMINI_IMAGE
        elif (call := _get(part, "functionCall", "function_call")) is not None:
            tally.text(call)
        elif (reply := _get(part, "functionResponse", "function_response")) is not None:
            tally.text(reply)
        elif (code := _get(part, "executableCode", "executable_code")) is not None:
            tally.text(code.get("code") if isinstance(code, dict) else code)
        elif (result := _get(part, "codeExecutionResult", "code_execution_result")) is not None:
            tally.text(result.get("output") if isinstance(result, dict) else result)


def _get(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


__all__ = [
    "CL100K", "EXACT_LIMIT", "O200K", "SAMPLES", "count_text", "encoding_name",
    "estimate_chat", "estimate_gemini", "estimate_messages", "get_encoding", "preload",
]
