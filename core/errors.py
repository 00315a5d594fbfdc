"""Errors the gateway answers with, independent of any API's wire shape.

An ingress API (OpenAI, Anthropic, ...) turns a `GatewayError` into its own error body; the
rest of the code raises these and never builds error JSON by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class GatewayError(Exception):
    """A request that ends with an error answer: HTTP status, message, and a machine code."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    native_body: bytes | None = field(default=None, repr=False)
    """The backend's own error body, when the backend speaks the client's API: the client
    gets it unchanged (with `native_content_type`) instead of a body the gateway writes."""
    native_content_type: str = "application/json"

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def is_client_error(self) -> bool:
        return 400 <= self.status < 500


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", code, param)


def body_too_large(limit: int) -> GatewayError:
    """A request body over `gateway.max_body_bytes` (read whole, or streamed as an upload)."""
    return GatewayError(
        413, f"request body is larger than the gateway's limit of {limit} bytes",
        code="request_too_large",
    )


def not_found(message: str, *, code: str = "not_found") -> GatewayError:
    return GatewayError(404, message, "invalid_request_error", code)


def upstream_error(status: int, message: str, code: str = "upstream_error") -> GatewayError:
    """An error that came from, or while talking to, a backend."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return GatewayError(status, message, kind, code)


def credentials_rejected(
    status: int, what: str = "api_key", reason: str | None = None
) -> GatewayError:
    """A backend refused the gateway's own credentials: the gateway's fault, not the
    client's, so a 502 that names neither the key nor the backend's own message (`reason`
    is a short error type, e.g. AWS's `UnrecognizedClientException`; default `HTTP <status>`)."""
    return upstream_error(
        502,
        f"the backend rejected the gateway's credentials ({reason or f'HTTP {status}'}); "
        f"check the backend's {what}",
        "upstream_auth_failed",
    )


class ConfigError(Exception):
    """An invalid configuration; the message names the file, the YAML path and what is wrong."""
