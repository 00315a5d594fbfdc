"""Bedrock error answers and ConverseStream exception messages as GatewayErrors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelway.errors import GatewayError, upstream_error
from modelway.plugins.providers.bedrock.eventstream import EventMessage
from modelway.providerkit import loads_or_none

# HTTP statuses of the exceptions a ConverseStream can carry (from the service model).
_STREAM_STATUS = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}


def error_type(headers: Mapping[str, str], data: Any) -> str | None:
    """The AWS error type: `x-amzn-errortype` (before any ':'), else the body's `__type`."""
    raw = headers.get("x-amzn-errortype")
    if not raw and isinstance(data, Mapping):
        raw = data.get("__type") or data.get("code")
    if not isinstance(raw, str) or not raw:
        return None
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
    """A Bedrock error answer (`{"message": ...}`) as a GatewayError with the status kept."""
    data = loads_or_none(body)
    kind = error_type(headers, data)
    message = _message_of(data) or f"the backend answered HTTP {status}"
    if kind:
        message = f"{kind}: {message}"
    return upstream_error(status, message, kind or "upstream_error")


def stream_exception(message: EventMessage) -> GatewayError:
    """An `exception` or `error` message inside a ConverseStream as a GatewayError."""
    kind = message.header(":exception-type") or message.header(":error-code") or "error"
    text = _message_of(loads_or_none(message.payload)) or message.header(":error-message")
    status = _STREAM_STATUS.get(kind, 502)
    return upstream_error(status, f"{kind}: {text or 'the backend reported an error'}", kind)


def _message_of(data: Any) -> str | None:
    if not isinstance(data, Mapping):
        return None
    message = data.get("message") or data.get("Message")
    return message if isinstance(message, str) and message else None
