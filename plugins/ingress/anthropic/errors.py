"""A GatewayError in Anthropic's error shape (`{"type": "error", "error": {...}}`)."""

from __future__ import annotations

from typing import Any

from modelway.errors import GatewayError
from modelway.plugins.providers.anthropic.errors import ERROR_TYPE_STATUS, error_type_for_status

_STATUSES = frozenset(ERROR_TYPE_STATUS.values())


def error_type(error: GatewayError) -> str:
    """Anthropic's error type: by status, else the error's own type when Anthropic has it."""
    if error.status in _STATUSES:
        return error_type_for_status(error.status)
    if error.type in ERROR_TYPE_STATUS:
        return error.type
    return error_type_for_status(error.status)


def error_object(error: GatewayError) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(error), "message": error.message}}
