"""JSON for the hot path: orjson where it can, the standard library where orjson cannot.

`loads` is strict (UTF-8 only, no NaN or Infinity, no lone surrogates, at most 1024 levels),
so what it accepts can always be encoded again; `dumps` is compact UTF-8. A text that cannot
be encoded (a lone surrogate that reached a body some other way) is a client's mistake: a
GatewayError 400, never an encoding exception.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from modelway.errors import GatewayError

JSONDecodeError = orjson.JSONDecodeError


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises `JSONDecodeError` (a ValueError) for anything that is not strict JSON."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        return _fallback(value, exc)


def dumps_text(value: Any) -> str:
    return dumps(value).decode()


def _fallback(value: Any, exc: TypeError) -> bytes:
    if "surrogates" in str(exc):
        raise GatewayError(
            400,
            "the request holds a lone UTF-16 surrogate (e.g. \\ud800), which is not valid Unicode",
            code="invalid_unicode",
        ) from None
    # Integers beyond 64 bits and other types orjson does not encode.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()
