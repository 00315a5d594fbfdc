"""Reading a Gemini request body: field names in either spelling Google accepts
(`maxOutputTokens` or `max_output_tokens`), and typed reads that name the field on a 400."""

from __future__ import annotations

import functools
import re
from typing import Any

from modelway.errors import bad_request

JSON = dict[str, Any]


def camel(name: str) -> str:
    """`max_output_tokens` -> `maxOutputTokens` (Google accepts both spellings)."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def get(obj: Any, name: str) -> Any:
    """Field `name` (camelCase) of a JSON object, also under its snake_case spelling."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(snake(name))


@functools.cache
def snake(name: str) -> str:
    """`maxOutputTokens` -> `max_output_tokens`."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def object_at(value: Any, where: str) -> JSON:
    """`value` when it is an object; else a 400 naming `where`."""
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object", param=where)
    return value


def list_at(value: Any, where: str) -> list[Any]:
    """`value` when it is a list (None is an empty one); else a 400 naming `where`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list", param=where)
    return value


def string_at(value: Any, where: str) -> str:
    """`value` when it is a non-empty string; else a 400 naming `where`."""
    if not isinstance(value, str) or not value:
        raise bad_request(f"{where} must be a non-empty string", param=where)
    return value
