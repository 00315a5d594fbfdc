"""Provider for Google's Gemini API (Google AI Studio, `generativelanguage.googleapis.com`).

Chat requests become `models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`)
calls with the key in `x-goog-api-key`; the translation itself lives in `gemini_wire`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation, UpstreamRequest
from modelway.config import BackendConfig
from modelway.context import RequestContext
from modelway.errors import GatewayError, credentials_rejected
from modelway.extension import Provider, ProviderSpec
from modelway.plugins.providers.gemini.wire import (
    GeminiStreamDecoder,
    ResponseMeta,
    dumps,
    error_from_google,
    is_auth_failure,
    loads_or_none,
    method_name,
    model_path,
    parse_gemini_answer,
    to_gemini_request,
)
from modelway.wire import GEMINI_COUNT_TOKENS, GEMINI_GENERATE, GEMINI_OTHER, Call

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
NATIVE = frozenset({GEMINI_GENERATE, GEMINI_COUNT_TOKENS, GEMINI_OTHER})


class GeminiOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_version: str = Field("v1beta", pattern=r"^v\d+(alpha|beta)?\d*$")
    """The API version in the path: `v1beta` (every feature) or `v1`."""


def response_meta(ctx: RequestContext, request: CanonicalRequest) -> ResponseMeta:
    """Answer id, model and time for an answer that does not carry them itself."""
    return ResponseMeta(ctx.id, request.model, int(time.time()))


def require_chat(request: CanonicalRequest, backend: BackendConfig) -> None:
    if request.operation is not Operation.CHAT:
        raise GatewayError(
            400,
            f"backend '{backend.provider}' cannot serve {request.operation}",
            code="unsupported_operation",
        )


def auth_failed(status: int) -> GatewayError:
    return credentials_rejected(status, "credentials")


class GeminiProvider(Provider):
    options: GeminiOptions

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        super().__init__(backend, options or GeminiOptions())
        base = (backend.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.models_url = f"{base}/{self.options.api_version}/models"

    def _key(self, ctx: RequestContext) -> str | None:
        if self.backend.auth == "passthrough":
            return ctx.client.api_key
        return self.backend.api_key.get_secret_value() if self.backend.api_key else None

    def native_wires(self, model: str) -> frozenset[str]:
        return NATIVE

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The client's own body; the model (and API version) are the backend's, in the URL."""
        if call.wire == GEMINI_OTHER:
            version_path = call.path.split("/", 2)[2] if call.path.count("/") >= 2 else ""
            base = self.models_url.removesuffix("/models")
            url = f"{base}/{version_path}" + (f"?{call.query}" if call.query else "")
        else:
            method = "countTokens" if call.wire == GEMINI_COUNT_TOKENS else method_name(call.stream)
            url = f"{self.models_url}/{model_path(model)}:{method}"
        headers = {"content-type": "application/json", **self.backend.headers}
        headers.update(ctx.forwarded_headers())
        key = self._key(ctx)
        if key:
            headers["x-goog-api-key"] = key
        return UpstreamRequest(
            call.method, url, headers, call.encoded(), self.backend.timeout_seconds
        )

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        require_chat(request, self.backend)
        url = f"{self.models_url}/{model_path(request.model)}:{method_name(request.stream)}"
        headers = {"content-type": "application/json", **self.backend.headers}
        key = self._key(ctx)
        if key:
            headers["x-goog-api-key"] = key
        body = dumps(to_gemini_request(request.body))
        return UpstreamRequest("POST", url, headers, body, self.backend.timeout_seconds)

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        return parse_gemini_answer(status, body, response_meta(ctx, request))

    def stream_decoder(self, ctx: RequestContext, request: CanonicalRequest) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(response_meta(ctx, request))

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        data = loads_or_none(body)
        if self.backend.auth == "gateway" and is_auth_failure(status, data):
            return auth_failed(status)
        error = error_from_google(status, data)
        if headers.get("retry-after"):
            error.headers.pop("retry-after", None)
        return error


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
