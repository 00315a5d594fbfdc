"""Provider for OpenAI and every OpenAI-compatible server (vLLM, Ollama, Mistral, DeepSeek, Groq).

Pure translation: the canonical form is OpenAI's, so requests pass through with the upstream
model name, the gateway's credentials and, for streams, a request for usage; answers are
checked and their usage read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from modelway import hookimpl
from modelway.canonical import (
    CanonicalRequest,
    CanonicalResponse,
    Operation,
    UpstreamRequest,
    Usage,
)
from modelway.config import BackendConfig
from modelway.context import RequestContext
from modelway.errors import GatewayError, upstream_error
from modelway.extension import Provider, ProviderSpec, StreamDecoder
from modelway.hubext import SERVICE_TIER, TOP_K, strip_for_openai
from modelway.plugins.providers.responses import lane
from modelway.plugins.providers.responses.stream import ResponsesStreamDecoder
from modelway.providerkit import (
    SSEStreamDecoder,
    backend_error,
    dumps,
    error_object,
    event_object,
    loads_or_none,
    parse_error,
    request_key,
    require_operation,
    unexplained,
)
from modelway.sse import SSEEvent
from modelway.wire import OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RESPONSES, PASSTHROUGH, Call

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_PATHS = {Operation.CHAT: "/chat/completions", Operation.EMBEDDINGS: "/embeddings"}


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization: str | None = None
    project: str | None = None
    stream_usage: bool = True
    """Ask for usage in streams (`stream_options.include_usage`); turn off for servers that
    reject the field."""
    responses: bool | None = None
    """Whether the backend has the Responses API (`/responses`): Responses clients then get
    the same-API lane. Default: yes for api.openai.com, no for any other `base_url`."""
    api: Literal["chat", "responses"] = "chat"
    """Where chat requests go: `responses` for a model served only by the Responses API
    (chat clients are translated to it; Responses clients get the same-API lane)."""
    top_k: bool | None = None
    """Whether the server takes `top_k` (vLLM, SGLang, llama.cpp, LM Studio ... do): a
    translated request that carries it (Anthropic's `top_k`, Gemini's `topK`) sends it, else
    it is a 400. Default: yes for a `base_url` other than api.openai.com."""


class OpenAIStreamDecoder(SSEStreamDecoder):
    """OpenAI SSE to canonical chunks; errors and early ends become error chunks, in order.

    The stream is complete at `[DONE]` or at a chunk with a finish reason (some compatible
    servers never send `[DONE]`); an upstream `{"error": ...}` event ends it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._complete = False

    @property
    def complete(self) -> bool:
        return self._complete

    def translate(self, event: SSEEvent) -> list[dict[str, Any]]:
        if event.data == "[DONE]":
            self._complete = True
            return []
        chunk = event_object(event.data)
        if any(c.get("finish_reason") for c in chunk.get("choices") or ()):
            self._complete = True
        return [chunk]


class OpenAIProvider(Provider):
    operations = frozenset({Operation.CHAT, Operation.EMBEDDINGS})
    options: OpenAIOptions

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        super().__init__(backend, options or OpenAIOptions())
        self.base_url = (backend.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._official = self.base_url == DEFAULT_BASE_URL
        self._static_headers = self._headers()
        self._wires = self._native_wires()
        self._features = self._hub_features()

    def _hub_features(self) -> frozenset[str]:
        """`service_tier` is OpenAI's own field; `top_k` only where the server takes it."""
        top_k = self.options.top_k
        if top_k is None:
            top_k = not self._official and self.options.api == "chat"
        return frozenset({SERVICE_TIER, TOP_K} if top_k else {SERVICE_TIER})

    def hub_features(self, model: str) -> frozenset[str]:
        return self._features

    def _native_wires(self) -> frozenset[str]:
        wires = set(self.native)
        responses = self.options.responses
        if responses is None:
            responses = self.backend.base_url is None or self.base_url == DEFAULT_BASE_URL
        if responses or self.options.api == "responses":
            wires.add(OPENAI_RESPONSES)
        if self.options.api == "responses":
            wires.discard(OPENAI_CHAT)
        return frozenset(wires)

    @property
    def _responses_api(self) -> bool:
        return self.options.api == "responses"

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.options.organization:
            headers["openai-organization"] = self.options.organization
        if self.options.project:
            headers["openai-project"] = self.options.project
        headers.update(self.backend.headers)
        return headers

    def _auth(self, ctx: RequestContext) -> dict[str, str]:
        key = request_key(ctx, self.backend)
        return {"authorization": f"Bearer {key}"} if key else {}

    native = frozenset({OPENAI_CHAT, OPENAI_EMBEDDINGS, PASSTHROUGH})

    def native_wires(self, model: str) -> frozenset[str]:
        return self._wires

    def _responses_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        headers = (
            dict(self._static_headers)
            if call.body
            else {k: v for k, v in self._static_headers.items() if k != "content-type"}
        )
        if call.stream:
            headers["accept"] = "text/event-stream"
        headers.update(ctx.forwarded_headers())
        headers.update(self._auth(ctx))
        query = lane.native_query(call)
        url = self.base_url + lane.native_path(call) + (f"?{query}" if query else "")
        body = lane.native_body(call, model)
        return UpstreamRequest(call.method, url, headers, body, self.backend.timeout_seconds)

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The client's own body (model name and credentials replaced), to the same path."""
        if call.wire == OPENAI_RESPONSES:
            return self._responses_native(ctx, call, model)
        if call.wire == PASSTHROUGH:
            path = call.path.removeprefix("/v1") + (f"?{call.query}" if call.query else "")
            headers = {**self._static_headers, "content-type": call.content_type}
            if not call.content_type:
                del headers["content-type"]
        else:
            path = _PATHS[call.operation]
            headers = dict(self._static_headers)
        changes: dict[str, Any] = {"model": model} if call.model and model != call.model else {}
        if call.stream and call.wire == OPENAI_CHAT:
            headers["accept"] = "text/event-stream"
            if self.options.stream_usage:
                options = call.body.get("stream_options") or {}
                changes["stream_options"] = {**options, "include_usage": True}
        headers.update(ctx.forwarded_headers())
        headers.update(self._auth(ctx))
        body = call.encoded(**changes)
        url = self.base_url + path
        return UpstreamRequest(call.method, url, headers, body, self.backend.timeout_seconds)

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        require_operation(request, self.backend, self.operations)
        path = _PATHS[request.operation]
        body = strip_for_openai(request.body, reasoning=not self._official)
        headers = {**self._static_headers, **self._auth(ctx)}
        if self._responses_api and request.operation is Operation.CHAT:
            if request.stream:
                headers["accept"] = "text/event-stream"
            url = self.base_url + lane.RESPONSES_PATH
            return UpstreamRequest(
                "POST", url, headers, lane.hub_body(request), self.backend.timeout_seconds
            )
        if request.stream:
            headers["accept"] = "text/event-stream"
            if self.options.stream_usage:
                options = {**(body.get("stream_options") or {}), "include_usage": True}
                body = {**body, "stream_options": options}
        return UpstreamRequest(
            "POST", self.base_url + path, headers, dumps(body), self.backend.timeout_seconds
        )

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        if self._responses_api and request.operation is Operation.CHAT:
            return lane.hub_answer(status, body)
        data = loads_or_none(body)
        if data is None:
            raise upstream_error(
                502,
                "the backend answered with something that is not JSON",
                "upstream_invalid_response",
            )
        expected = "choices" if request.operation is Operation.CHAT else "data"
        if not isinstance(data, dict) or not isinstance(data.get(expected), list):
            raise upstream_error(
                502, f"the backend's answer has no '{expected}' list", "upstream_invalid_response"
            )
        return CanonicalResponse(data, Usage.from_openai(data.get("usage")), status)

    def stream_decoder(self, ctx: RequestContext, request: CanonicalRequest) -> StreamDecoder:
        if self._responses_api:
            return ResponsesStreamDecoder()
        return OpenAIStreamDecoder()

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return parse_error(self.backend, status, headers, body, error_from_body)


def error_from_body(status: int, data: Any) -> GatewayError:
    """An OpenAI error body (`{"error": {"message", "type", "code", "param"}}`)."""
    error = error_object(data)
    if error is None:
        return unexplained(status)
    fields = (error.get(name) for name in ("message", "type", "code", "param"))
    return backend_error(status, *fields)


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            "openai",
            OpenAIProvider,
            OpenAIOptions,
            "OpenAI and OpenAI-compatible servers (set base_url for vLLM, Ollama, Mistral, ...)",
            default_hosts=("api.openai.com",),
        )
    ]
