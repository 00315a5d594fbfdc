"""A GatewayError in Google's error shape (`{"error": {"code", "message", "status"}}`)."""

from __future__ import annotations

from typing import Any

from modelway.errors import GatewayError

JSON = dict[str, Any]

GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_KNOWN_STATUSES = frozenset(GOOGLE_STATUSES.values()) | {
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "ALREADY_EXISTS",
    "DATA_LOSS",
    "UNKNOWN",
}


def google_status(error: GatewayError) -> str:
    """The google.rpc status name: the error's own when it is one (from a Gemini backend)."""
    own = (error.code or "").upper()
    if own in _KNOWN_STATUSES:
        return own
    if error.status in GOOGLE_STATUSES:
        return GOOGLE_STATUSES[error.status]
    return "INTERNAL" if error.status >= 500 else "INVALID_ARGUMENT"


def error_object(error: GatewayError) -> JSON:
    """Google's error shape; the gateway's own code (if any) as an ErrorInfo reason."""
    status = google_status(error)
    body: JSON = {"code": error.status, "message": error.message, "status": status}
    if error.code and error.code.upper() != status:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": error.code.upper(),
                "domain": "modelway",
            }
        ]
    return {"error": body}
