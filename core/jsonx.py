"""JSON for the hot path: orjson where it can, the standard library where orjson cannot.

`loads` is strict (UTF-8 only, no NaN or Infinity, no lone surrogates, at most 1024 levels),
so what it accepts can always be encoded again; `dumps` is compact UTF-8. A text that cannot
be encoded (a lone surrogate that reached a body some other way) is a client's mistake: a
GatewayError 400, never an encoding exception.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from modelway.errors import GatewayError, bad_request

JSONDecodeError = orjson.JSONDecodeError


# An escaped high surrogate not followed by an escaped low one, or a low one without a high
# one before it (a pair such as "\ud83d\ude00" is one valid character).
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises `JSONDecodeError` (a ValueError) for anything that is not strict JSON."""
    return orjson.loads(data)


def loads_request(body: bytes) -> Any:
    """Parse a client's JSON body: `JSONDecodeError` for what is not JSON, a GatewayError 400
    `invalid_unicode` naming the code point for an escaped lone surrogate (`\\ud800`)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        found = _LONE_SURROGATE.search(body) if "surrogate" in str(exc) else None
        if found is None:  # raw bytes that are not UTF-8 are simply not JSON
            raise
        point = int(found.group()[2:], 16)
        raise bad_request(
            f"a string holds a lone surrogate (U+{point:04X}), which is not valid Unicode: "
            "send each character whole (a surrogate pair, or the character itself)",
            code="invalid_unicode",
        ) from None


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (no ASCII escaping).

    orjson first; what it cannot encode (integers over 64 bits, non-string keys) goes
    through the standard library. A string holding a lone surrogate (which the standard
    library's decoder lets in, e.g. from `"\\ud800"`) is not Unicode: a 400 `invalid_unicode`.
    """
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        pass
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise _invalid_unicode(exc) from None


def dumps_text(value: Any) -> str:
    return dumps(value).decode()


def _invalid_unicode(exc: UnicodeEncodeError) -> GatewayError:
    point = ord(exc.object[exc.start])
    return bad_request(
        f"a string holds a lone surrogate (U+{point:04X}), which is not valid Unicode: "
        "send each character whole (a surrogate pair, or the character itself)",
        code="invalid_unicode",
    )
