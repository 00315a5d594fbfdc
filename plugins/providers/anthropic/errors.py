"""Anthropic error bodies and stream `error` events as GatewayErrors, and the type table.

Pure. `error_type_for_status` is the inverse of `error_status`, for an Anthropic-format
ingress.
"""

from __future__ import annotations

from typing import Any

from modelway.errors import GatewayError
from modelway.providerkit import as_dict, backend_error, error_object, unexplained

ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Anthropic error `type` -> HTTP status, from Anthropic's Errors reference. A status is kept
as the backend sent it (529 `overloaded_error` stays 529: it is >= 500, so the gateway
treats it as retriable and OpenAI SDKs raise `InternalServerError`)."""


def error_status(error_type: Any, default: int = 502) -> int:
    """The HTTP status Anthropic uses for an error `type`."""
    return ERROR_TYPE_STATUS.get(error_type, default) if isinstance(error_type, str) else default


def error_type_for_status(status: int) -> str:
    """The Anthropic error `type` for an HTTP status (the inverse of `error_status`)."""
    for kind, code in ERROR_TYPE_STATUS.items():
        if code == status:
            return kind
    return "api_error" if status >= 500 else "invalid_request_error"


def error_from_body(status: int, body: Any) -> GatewayError:
    """An Anthropic error body (`{"type": "error", "error": {"type", "message"}}`) as a
    GatewayError with the status kept, Anthropic's error type as its type, and
    `error.details.error_code` (when present) as its code."""
    error = error_object(body)
    if error is None:
        return unexplained(status)
    code = as_dict(error.get("details")).get("error_code")
    return backend_error(status, error.get("message"), error.get("type"), code)


def error_from_event(data: dict[str, Any]) -> GatewayError:
    """A stream's `error` event as a GatewayError, with the status its type stands for."""
    kind = as_dict(data.get("error")).get("type")
    return error_from_body(error_status(kind), data)
