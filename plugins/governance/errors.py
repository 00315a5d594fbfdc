"""The governance errors, as GatewayErrors every ingress API turns into its own shape, and
the OpenAI-style rate-limit headers sent with them and with successful answers."""

from __future__ import annotations

import math

from modelway.errors import GatewayError


def unauthorized(message: str, code: str) -> GatewayError:
    return GatewayError(401, message, "invalid_request_error", code)


def forbidden(message: str, code: str) -> GatewayError:
    return GatewayError(403, message, "invalid_request_error", code)


def rate_limited(message: str, family: str, headers: dict[str, str]) -> GatewayError:
    """429 over a rate limit (OpenAI's `type` names the family: `requests` or `tokens`)."""
    return GatewayError(429, message, family, "rate_limit_exceeded", headers=headers)


def over_budget(message: str, retry_after: float) -> GatewayError:
    return GatewayError(
        429, message, "insufficient_quota", "insufficient_quota",
        headers={"retry-after": str(max(1, math.ceil(retry_after)))},
    )  # fmt: skip


def store_down(what: str) -> GatewayError:
    return GatewayError(
        503,
        f"the gateway cannot check {what} now (its state store is unavailable); retry shortly",
        "server_error",
        "state_unavailable",
        headers={"retry-after": "1"},
    )


def duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"


def limit_headers(family: str, limit: float, remaining: float, reset: float) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{family}": str(int(limit)),
        f"x-ratelimit-remaining-{family}": str(max(0, int(remaining))),
        f"x-ratelimit-reset-{family}": duration(reset),
    }
