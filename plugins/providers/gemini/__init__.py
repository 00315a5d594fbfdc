"""Provider for Google's Gemini API (Google AI Studio, `generativelanguage.googleapis.com`).

Chat requests become `models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`)
calls with the key in `x-goog-api-key`; the translation is the pure code beside this module
(`request`, `response`, `stream`, `errors`), which the `vertex` provider shares. Other
Gemini endpoints pass through; resumable uploads keep their upload URL on the gateway
(`uploads`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation, UpstreamRequest
from modelway.config import BackendConfig
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.extension import Provider, ProviderSpec
from modelway.plugins.providers.gemini import uploads
from modelway.plugins.providers.gemini.errors import error_from_google, is_auth_failure
from modelway.plugins.providers.gemini.reasoning import asks_reasoning
from modelway.plugins.providers.gemini.request import (
    GEMINI_FEATURES,
    method_name,
    model_path,
    to_gemini_request,
)
from modelway.plugins.providers.gemini.response import ResponseMeta, parse_gemini_answer
from modelway.plugins.providers.gemini.stream import GeminiStreamDecoder
from modelway.providerkit import counted, dumps, parse_error, request_key, require_operation
from modelway.wire import GEMINI_COUNT_TOKENS, GEMINI_GENERATE, PASSTHROUGH, Call

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
NATIVE = frozenset({GEMINI_GENERATE, GEMINI_COUNT_TOKENS, PASSTHROUGH})


VERSION = re.compile(r"^v\d+(alpha|beta)?\d*$")
"""A Gemini API version (`v1`, `v1beta`, `v1alpha`)."""


class GeminiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_version: str = Field("v1beta", pattern=VERSION.pattern)
    """The API version in the path: `v1beta` (every feature) or `v1`. Set, it applies to
    every request; unset, a Gemini client's same-API request keeps its own version."""


def response_meta(ctx: RequestContext, request: CanonicalRequest) -> ResponseMeta:
    """Answer id, model and time for an answer that does not carry them itself, and whether
    the request asked for reasoning."""
    return ResponseMeta(ctx.id, request.model, int(time.time()), asks_reasoning(request.body))


def parse_google_error(
    backend: BackendConfig,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    read: Callable[[int, Any], GatewayError] = error_from_google,
) -> GatewayError:
    """The provider kit's `parse_error` for Google's APIs, where a bad key can be a 400."""
    return parse_error(
        backend, status, headers, body, read, auth_failure=is_auth_failure, what="credentials"
    )


COUNTED = ("contents", "systemInstruction", "tools", "toolConfig")
"""What a translated countTokens request counts, inside its `generateContentRequest`."""


class GeminiProvider(Provider):
    options: GeminiOptions
    operations = frozenset({Operation.CHAT, Operation.COUNT_TOKENS})

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        super().__init__(backend, options or GeminiOptions())
        base = (backend.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.base = base
        self.models_url = f"{base}/{self.options.api_version}/models"
        self.pinned_version = "api_version" in self.options.model_fields_set
        """A configured `api_version` applies to every request; else a same-API request
        keeps the version the client asked for (`/v1/...` or `/v1beta/...`)."""

    def native_wires(self, model: str) -> frozenset[str]:
        return NATIVE

    def hub_features(self, model: str) -> frozenset[str]:
        return GEMINI_FEATURES

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The client's own body; the model (and API version) are the backend's, in the URL."""
        if call.wire == PASSTHROUGH and uploads.is_upload(call.path):
            return self._upload(ctx, call)
        if call.wire == PASSTHROUGH:
            version_path = call.path.split("/", 2)[2] if call.path.count("/") >= 2 else ""
            base = self.models_url.removesuffix("/models")
            url = f"{base}/{version_path}" + (f"?{call.query}" if call.query else "")
        else:
            method = "countTokens" if call.wire == GEMINI_COUNT_TOKENS else method_name(call.stream)
            url = f"{self._models_url(call)}/{model_path(model)}:{method}"
        headers = {"content-type": "application/json", **self.backend.headers}
        headers.update(ctx.forwarded_headers())
        key = request_key(ctx, self.backend)
        if key:
            headers["x-goog-api-key"] = key
        return UpstreamRequest(
            call.method, url, headers, call.encoded(), self.backend.timeout_seconds
        )

    def _upload(self, ctx: RequestContext, call: Call) -> UpstreamRequest:
        """A resumable-upload request, to the backend's own upload path (`uploads`)."""
        uploads.check_backend(ctx, self.base)
        headers = {**self.backend.headers, **ctx.forwarded_headers()}
        headers.update(uploads.upload_headers(ctx, call))
        key = request_key(ctx, self.backend)
        if key:
            headers["x-goog-api-key"] = key
        url = uploads.upload_url(self.base, call)
        return UpstreamRequest(call.method, url, headers, call.raw, self.backend.timeout_seconds)

    def answer_headers(self, ctx: RequestContext, headers: Mapping[str, str]) -> dict[str, str]:
        call = ctx.call
        if call is None or call.wire != PASSTHROUGH or not uploads.is_upload(call.path):
            return {}
        return uploads.answer_headers(ctx, headers, self.base)

    def _models_url(self, call: Call) -> str:
        version = call.path.split("/", 2)[1] if call.path.startswith("/v") else ""
        if self.pinned_version or not VERSION.fullmatch(version):
            return self.models_url
        return f"{self.base}/{version}/models"

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        require_operation(request, self.backend, self.operations)
        counting = request.operation is Operation.COUNT_TOKENS
        method = "countTokens" if counting else method_name(request.stream)
        url = f"{self.models_url}/{model_path(request.model)}:{method}"
        headers = {"content-type": "application/json", **self.backend.headers}
        key = request_key(ctx, self.backend)
        if key:
            headers["x-goog-api-key"] = key
        body = to_gemini_request(request.body, request.model)
        if counting:  # countTokens takes a whole generateContentRequest, or contents only
            inner = {k: body[k] for k in COUNTED if k in body}
            name = f"models/{request.model.removeprefix('models/')}"
            body = {"generateContentRequest": {"model": name, **inner}}
        return UpstreamRequest("POST", url, headers, dumps(body), self.backend.timeout_seconds)

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        if request.operation is Operation.COUNT_TOKENS:
            return counted(body, "totalTokens")
        return parse_gemini_answer(status, body, response_meta(ctx, request))

    def stream_decoder(self, ctx: RequestContext, request: CanonicalRequest) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(response_meta(ctx, request))

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return parse_google_error(self.backend, status, headers, body)


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            "gemini",
            GeminiProvider,
            GeminiOptions,
            "Google Gemini API (AI Studio): generateContent, key in x-goog-api-key",
            requires_api_key=True,
        )
    ]
