"""Provider for OpenAI and every OpenAI-compatible server (vLLM, Ollama, Mistral, DeepSeek, Groq).

Pure translation: the canonical form is OpenAI's, so requests pass through with the upstream
model name, the gateway's credentials and, for streams, a request for usage; answers are
checked and their usage read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
from modelway.errors import GatewayError, credentials_rejected, upstream_error
from modelway.extension import Provider, ProviderSpec
from modelway.sse import SSEDecoder, SSEEvent
from modelway.wire import OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_OTHER, Call

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_PATHS = {Operation.CHAT: "/chat/completions", Operation.EMBEDDINGS: "/embeddings"}


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organization: str | None = None
    project: str | None = None
    stream_usage: bool = True
    """Ask for usage in streams (`stream_options.include_usage`); turn off for servers that
    reject the field."""


class OpenAIStreamDecoder:
    """OpenAI SSE to canonical chunks; errors and early ends become error chunks, in order."""

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self._complete = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._chunks(self._sse.feed(data))

    def close(self) -> list[dict[str, Any]]:
        chunks = self._chunks(self._sse.close())
        if not self._complete and not (chunks and "error" in chunks[-1]):
            chunks.append(
                stream_error(
                    "the backend's stream ended before it was complete", "upstream_stream_truncated"
                )
            )
        return chunks

    def _chunks(self, events: list[SSEEvent]) -> list[dict[str, Any]]:
        chunks = []
        for event in events:
            if event.data == "[DONE]":
                self._complete = True
                continue
            chunk = _event_chunk(event.data)
            chunks.append(chunk)
            if "error" in chunk:
                break
            if any(c.get("finish_reason") for c in chunk.get("choices") or ()):
                self._complete = True
        return chunks


def _event_chunk(data: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        return stream_error(
            "the backend's stream has an event that is not JSON", "upstream_invalid_stream"
        )
    if not isinstance(chunk, dict):
        return stream_error(
            "the backend's stream has an event that is not an object", "upstream_invalid_stream"
        )
    return chunk


def stream_error(message: str, code: str) -> dict[str, Any]:
    """An in-order error chunk for a StreamDecoder to return."""
    return {"error": {"message": message, "type": "server_error", "code": code}}


class OpenAIProvider(Provider):
    operations = frozenset({Operation.CHAT, Operation.EMBEDDINGS})
    options: OpenAIOptions

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        super().__init__(backend, options or OpenAIOptions())
        self.base_url = (backend.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._static_headers = self._headers()

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.options.organization:
            headers["openai-organization"] = self.options.organization
        if self.options.project:
            headers["openai-project"] = self.options.project
        headers.update(self.backend.headers)
        return headers

    def _auth(self, ctx: RequestContext) -> dict[str, str]:
        if self.backend.auth == "passthrough":
            key = ctx.client.api_key
        else:
            key = self.backend.api_key.get_secret_value() if self.backend.api_key else None
        return {"authorization": f"Bearer {key}"} if key else {}

    native = frozenset({OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_OTHER})

    def native_wires(self, model: str) -> frozenset[str]:
        return self.native

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The client's own body (model name and credentials replaced), to the same path."""
        if call.wire == OPENAI_OTHER:
            path = call.path.removeprefix("/v1") + (f"?{call.query}" if call.query else "")
            headers = {**self._static_headers, "content-type": call.content_type}
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
        path = _PATHS.get(request.operation)
        if path is None:
            raise GatewayError(
                400,
                f"backend '{self.backend.provider}' cannot serve {request.operation}",
                code="unsupported_operation",
            )
        body = request.body
        headers = {**self._static_headers, **self._auth(ctx)}
        if request.stream:
            headers["accept"] = "text/event-stream"
            if self.options.stream_usage:
                options = {**(body.get("stream_options") or {}), "include_usage": True}
                body = {**body, "stream_options": options}
        return UpstreamRequest(
            "POST", self.base_url + path, headers, _dumps(body), self.backend.timeout_seconds
        )

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        try:
            data = json.loads(body)
        except ValueError:
            raise upstream_error(
                502,
                "the backend answered with something that is not JSON",
                "upstream_invalid_response",
            ) from None
        expected = "choices" if request.operation is Operation.CHAT else "data"
        if not isinstance(data, dict) or not isinstance(data.get(expected), list):
            raise upstream_error(
                502, f"the backend's answer has no '{expected}' list", "upstream_invalid_response"
            )
        return CanonicalResponse(data, Usage.from_openai(data.get("usage")), status)

    def stream_decoder(self, ctx: RequestContext, request: CanonicalRequest) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder()

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        if status in (401, 403) and self.backend.auth == "gateway":
            return credentials_rejected(status)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        return _error_from_body(status, data)


def _error_from_body(status: int, data: Any) -> GatewayError:
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return upstream_error(status, f"the backend answered HTTP {status}")
    message = error.get("message")
    kind = error.get("type")
    code = error.get("code")
    return GatewayError(
        status,
        message if isinstance(message, str) and message else f"the backend answered HTTP {status}",
        kind
        if isinstance(kind, str)
        else ("server_error" if status >= 500 else "invalid_request_error"),
        code if isinstance(code, str) else None,
        error.get("param") if isinstance(error.get("param"), str) else None,
    )


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


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
