"""Google error bodies (`{"error": {"code", "message", "status", "details"}}`) as
GatewayErrors, for the `gemini` and `vertex` providers: status, retry delay, auth failures.
"""

from __future__ import annotations

import math
from typing import Any

from modelway.errors import GatewayError
from modelway.providerkit import as_int, as_str, backend_error, error_object, unexplained

JSON = dict[str, Any]

_AUTH_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED", "CREDENTIALS_MISSING"}
)
_AUTH_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


def error_status(data: Any, default: int) -> int:
    """The HTTP status an error body names (`error.code`), else `default`."""
    code = as_int((error_object(data) or {}).get("code"))
    return code if 400 <= code <= 599 else default


def _details(error: JSON) -> list[JSON]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def is_auth_failure(status: int, data: Any) -> bool:
    """Whether the backend rejected the credentials (Gemini says so with a 400 for a bad key)."""
    if status in (401, 403):
        return True
    error = error_object(data) or {}
    if str(error.get("status")) in _AUTH_STATUSES:
        return True
    return any(str(d.get("reason")) in _AUTH_REASONS for d in _details(error))


def retry_delay(data: Any) -> str | None:
    """Seconds from a `google.rpc.RetryInfo` detail's `retryDelay` (e.g. "37s"), rounded up."""
    for detail in _details(error_object(data) or {}):
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(math.ceil(float(delay[:-1])))
            except ValueError:
                return None
    return None


def error_from_google(status: int, data: Any) -> GatewayError:
    """A Google error body `{"error": {"code", "message", "status"}}` as a GatewayError.

    The HTTP status is kept; the google status (RESOURCE_EXHAUSTED, ...) becomes the code.
    """
    error = error_object(data)
    if error is None:
        return unexplained(status)
    code = as_str(error.get("status")) or as_str(error.get("type"))
    result = backend_error(status, error.get("message"), None, code.lower() if code else None)
    delay = retry_delay(data)
    if delay is not None:
        result.headers["retry-after"] = delay
    return result
