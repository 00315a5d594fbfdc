"""Provider `anthropic`: Claude models through Anthropic's Messages API.

Backends look like `{provider: anthropic, api_key: ..., model: claude-..., base_url: ...}`
(base_url defaults to https://api.anthropic.com). Requests go to `POST {base_url}/v1/messages`
with `x-api-key` and `anthropic-version`. Translation is the pure code beside this module
(`request`, `response`, `stream`, `errors`); this module adds the options, headers and auth.

Errors keep their status (429 stays 429 with `retry-after`, 529 `overloaded_error` stays 529);
the backend rejecting the gateway's own key becomes a 502 `upstream_auth_failed` that does
not echo the key or the backend's message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation, UpstreamRequest
from modelway.config import BackendConfig
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.extension import Provider, ProviderSpec
from modelway.plugins.providers.anthropic.errors import error_from_body
from modelway.plugins.providers.anthropic.features import FEATURES
from modelway.plugins.providers.anthropic.request import DEFAULT_VERSION, request_to_anthropic
from modelway.plugins.providers.anthropic.response import parse_message
from modelway.plugins.providers.anthropic.stream import AnthropicStreamDecoder
from modelway.providerkit import counted, dumps, parse_error, request_key, require_operation
from modelway.wire import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES, PASSTHROUGH, Call

NATIVE = frozenset({ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS, PASSTHROUGH})
__all__ = ["AnthropicOptions", "AnthropicProvider", "AnthropicStreamDecoder", "messages_url"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
SAMPLING_REMOVED = "2026-10-21"
"""The first `anthropic-version` without temperature, top_p and top_k."""
SAMPLING_FIELDS = ("temperature", "top_p", "top_k")
COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
"""What a translated count request keeps (count_tokens refuses max_tokens and sampling)."""


class AnthropicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = DEFAULT_VERSION
    """The `anthropic-version` header."""
    default_max_tokens: int = Field(4096, ge=1)
    """`max_tokens` when the client sends neither `max_tokens` nor `max_completion_tokens`
    (Anthropic requires it)."""
    beta: list[str] = Field(default_factory=list)
    """Beta features, sent as the `anthropic-beta` header."""
    sampling: bool | None = None
    """Send `temperature` (capped at 1) and `top_p`. By default only with API versions
    before 2026-10-21, which removed them (a request carrying them is a 400)."""

    @property
    def sends_sampling(self) -> bool:
        return self.sends_sampling_with(self.version)

    def sends_sampling_with(self, version: str) -> bool:
        """Whether sampling fields go upstream with `anthropic-version: version`."""
        return self.sampling if self.sampling is not None else version < SAMPLING_REMOVED


class AnthropicProvider(Provider):
    options: AnthropicOptions
    operations = frozenset({Operation.CHAT, Operation.COUNT_TOKENS})

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        super().__init__(backend, options or AnthropicOptions())
        self.url = messages_url(backend.base_url or DEFAULT_BASE_URL)
        self._static_headers = self._headers()

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": self.options.version}
        if self.options.beta:
            headers["anthropic-beta"] = ",".join(self.options.beta)
        headers.update(self.backend.headers)
        return headers

    def _auth(self, ctx: RequestContext) -> dict[str, str]:
        key = request_key(ctx, self.backend)
        return {"x-api-key": key} if key else {}

    def native_wires(self, model: str) -> frozenset[str]:
        return NATIVE

    def hub_features(self, model: str) -> frozenset[str]:
        return FEATURES

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The client's own body and feature headers; the backend's version and betas are
        added to the client's, the credentials are the gateway's."""
        headers = merge_anthropic_headers(self._static_headers, ctx.forwarded_headers())
        headers.update(self._auth(ctx))
        if call.stream:
            headers.setdefault("accept", "text/event-stream")
        if call.wire == PASSTHROUGH:
            headers["content-type"] = call.content_type
            if not call.content_type:
                del headers["content-type"]
        base = self.url.removesuffix("/messages")
        path = call.path.removeprefix("/v1")
        query = f"?{call.query}" if call.query else ""
        changes: dict[str, Any] = {"model": model} if call.model and model != call.model else {}
        changes.update(self._unsent_sampling(ctx, call, headers.get("anthropic-version", "")))
        body = call.encoded(**changes)
        url = base + path + query
        return UpstreamRequest(call.method, url, headers, body, self.backend.timeout_seconds)

    def _unsent_sampling(self, ctx: RequestContext, call: Call, version: str) -> dict[str, None]:
        """Sampling fields a policy (not the client) set, left out when the effective API
        version has none (a 400 otherwise): noted in the access log under `not_sent`. The
        client's own values pass, and the upstream answers them itself."""
        if not call.policy_fields or self.options.sends_sampling_with(version):
            return {}
        dropped = [k for k in SAMPLING_FIELDS if k in call.policy_fields and k in call.body]
        if dropped:
            reason = f"anthropic-version {version} has no sampling fields"
            ctx.annotations["not_sent"] = {"fields": dropped, "reason": reason}
        return dict.fromkeys(dropped)

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        require_operation(request, self.backend, self.operations)
        body = request_to_anthropic(
            request.body,
            default_max_tokens=self.options.default_max_tokens,
            sampling=self.options.sends_sampling,
        )
        beta = ctx.forwarded_headers().get("anthropic-beta")  # an Anthropic client's betas
        static = self._static_headers
        headers = merge_anthropic_headers(static, {"anthropic-beta": beta}) if beta else static
        headers = {**headers, **self._auth(ctx)}
        url = self.url
        if request.operation is Operation.COUNT_TOKENS:
            body = {k: body[k] for k in COUNT_FIELDS if k in body}
            url += "/count_tokens"
        elif request.stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", url, headers, dumps(body), self.backend.timeout_seconds)

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        if request.operation is Operation.COUNT_TOKENS:
            return counted(body, "input_tokens")
        return parse_message(status, body)

    def stream_decoder(
        self, ctx: RequestContext, request: CanonicalRequest
    ) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(int(time.time()))

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return parse_error(self.backend, status, headers, body, error_from_body)


def merge_anthropic_headers(static: dict[str, str], client: dict[str, str]) -> dict[str, str]:
    """The backend's headers with the client's feature headers: its `anthropic-version` (it
    knows what it speaks), the union of both sides' `anthropic-beta` flags, the rest as sent."""
    headers = {**static, **client}
    headers["anthropic-version"] = static["anthropic-version"]
    if "anthropic-version" in client:
        headers["anthropic-version"] = client["anthropic-version"]
    flags = (static.get("anthropic-beta"), client.get("anthropic-beta"))
    betas = [b.strip() for header in flags if header for b in header.split(",")]
    if betas:
        headers["anthropic-beta"] = ",".join(dict.fromkeys(b for b in betas if b))
    return headers


def messages_url(base_url: str) -> str:
    """`{base_url}/v1/messages`; a base URL that already ends in /v1 is not doubled."""
    base = base_url.rstrip("/")
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            "anthropic",
            AnthropicProvider,
            AnthropicOptions,
            "Anthropic's Messages API (Claude models)",
            requires_api_key=True,
            default_hosts=("api.anthropic.com",),
        )
    ]
