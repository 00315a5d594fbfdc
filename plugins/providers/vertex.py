"""Provider for Vertex AI: Gemini models (`publishers/google`) and Claude models
(`publishers/anthropic`) in a Google Cloud project.

Gemini requests go to `.../publishers/google/models/{model}:generateContent` (or
`:streamGenerateContent?alt=sse`) with the `gemini` provider's body; Claude requests go to
`.../publishers/anthropic/models/{model}:rawPredict` (or `:streamRawPredict`) with the
`anthropic` provider's Messages body, minus `model`, plus `anthropic_version`, and
their answers and streams are read as the `anthropic` provider reads them.

Auth is a bearer token: a configured `access_token` (or the backend's `api_key`), the
client's own with `auth: passthrough`, or an OAuth token google-auth makes from a
`service_account_file` (or Application Default Credentials when nothing else is set). Those
are refreshed by a background task before they expire; google-auth's refresh does blocking
HTTP, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, UpstreamRequest
from modelway.config import BackendConfig
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.extension import Provider, ProviderSpec, StreamDecoder
from modelway.hubext import (
    ANTHROPIC_BLOCKS,
    ANTHROPIC_TOOLS,
    ANTHROPIC_UNKNOWN,
    CONTEXT_MANAGEMENT,
    TOP_K,
)
from modelway.plugins.providers.anthropic.errors import error_from_body
from modelway.plugins.providers.anthropic.request import request_to_anthropic
from modelway.plugins.providers.anthropic.response import parse_message
from modelway.plugins.providers.anthropic.stream import AnthropicStreamDecoder
from modelway.plugins.providers.gemini import (
    parse_google_error,
    response_meta,
)
from modelway.plugins.providers.gemini.errors import error_from_google
from modelway.plugins.providers.gemini.request import (
    GEMINI_FEATURES,
    method_name,
    model_path,
    to_gemini_request,
)
from modelway.plugins.providers.gemini.response import parse_gemini_answer
from modelway.plugins.providers.gemini.stream import GeminiStreamDecoder
from modelway.providerkit import dumps, request_key, require_operation
from modelway.wire import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    GEMINI_COUNT_TOKENS,
    GEMINI_GENERATE,
    Call,
)

logger = logging.getLogger("modelway.vertex")

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
ANTHROPIC_VERSION = "vertex-2023-10-16"
REFRESH_TIMEOUT = 30.0
Publisher = Literal["google", "anthropic"]


class VertexOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str = Field(min_length=1)
    location: str = Field("us-central1", min_length=1)
    publisher: Publisher | None = None
    """`google` (Gemini) or `anthropic` (Claude); by default inferred from the model name."""
    api_version: str = Field("v1", pattern=r"^v\d+(alpha|beta)?\d*$")
    access_token: SecretStr | None = None
    """A static OAuth access token (e.g. from `gcloud auth print-access-token`)."""
    service_account_file: str | None = None
    """A service-account JSON key; the gateway turns it into OAuth tokens and refreshes them."""
    default_max_tokens: int = Field(4096, ge=1)
    """Claude models: `max_tokens` when the client sends none (Anthropic requires it)."""

    @model_validator(mode="after")
    def _one_credential(self) -> VertexOptions:
        if self.access_token is not None and self.service_account_file is not None:
            raise ValueError("set access_token or service_account_file, not both")
        return self


def default_base_url(location: str) -> str:
    """The regional endpoint; `global` and the `us`/`eu` multi-regions have their own hosts."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    if location in ("us", "eu"):
        return f"https://aiplatform.{location}.rep.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def publisher_for(model: str, configured: Publisher | None) -> Publisher:
    if configured is not None:
        return configured
    return "anthropic" if model.startswith("claude") else "google"


# --------------------------------------------------------------------------- OAuth tokens


class TokenSource:
    """An OAuth access token from google-auth credentials, refreshed before it expires.

    `start()` fetches the first token and keeps a background task that refreshes it when
    half its lifetime (at most `margin` seconds before expiry) is left; a failed refresh is
    retried with backoff while the old token, if still valid, keeps being used. `sleep` is
    how it waits between refreshes (tests hand in one they control).
    """

    def __init__(
        self,
        load: Callable[[], Any],
        margin: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._load = load
        self._margin = margin
        self.sleep = sleep
        self._credentials: Any = None
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Event | None = None
        self.token: str | None = None
        self.expiry: dt.datetime | None = None
        self.failure: str | None = None

    def current(self) -> str | None:
        """The token while it is valid, else None."""
        if self.token is None or self.expiry is None:
            return self.token
        return self.token if _utcnow() < self.expiry else None

    async def start(self, wait: float = 30.0) -> None:
        self.ensure_running()
        assert self._first is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), wait)

    def ensure_running(self) -> None:
        """Start the refresh task if it is not running (idempotent; needs a running loop)."""
        if self._task is not None and not self._task.done():
            return
        loop = asyncio.get_running_loop()
        self._first = asyncio.Event()
        self._task = loop.create_task(self._run(), name="modelway-vertex-token")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # a refresh failure must not end the task
                self.failure = f"{type(exc).__name__}: {exc}"
                logger.warning("refreshing the Vertex AI access token failed: %s", self.failure)
                delay, backoff = backoff, min(backoff * 2, 60.0)
            else:
                delay, backoff = self._next_delay(), 1.0
            if self._first is not None:
                self._first.set()
            await self.sleep(delay)

    async def refresh(self) -> None:
        self.token, self.expiry = await asyncio.to_thread(self._refresh_blocking)
        self.failure = None

    def _refresh_blocking(self) -> tuple[str, dt.datetime | None]:
        from google.auth.transport.requests import Request

        if self._credentials is None:
            self._credentials = self._load()
        # A bounded wait: a hung token endpoint must not hold the worker thread for minutes.
        self._credentials.refresh(functools.partial(Request(), timeout=REFRESH_TIMEOUT))
        return self._credentials.token, self._credentials.expiry

    def _next_delay(self) -> float:
        if self.expiry is None:
            return 3600.0
        left = (self.expiry - _utcnow()).total_seconds()
        return max(left - min(self._margin, left / 2), 1.0)


def _utcnow() -> dt.datetime:
    """Now as google-auth keeps expiries: naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def service_account_loader(path: str) -> Callable[[], Any]:
    """Reads and checks the key file now (a bad file is a configuration error); no network."""
    from google.oauth2 import service_account

    try:
        credentials = service_account.Credentials.from_service_account_file(
            path, scopes=list(SCOPES)
        )
    except (OSError, ValueError) as exc:
        raise ValueError(f"service_account_file '{path}' is not usable: {_reason(exc)}") from None
    return lambda: credentials


def _reason(exc: Exception) -> str:
    """Why a key file failed, without echoing its contents."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    return str(exc).split("\n", 1)[0][:200]


def default_credentials_loader() -> Any:
    import google.auth

    credentials, _project = google.auth.default(scopes=list(SCOPES))
    return credentials


# --------------------------------------------------------------------------- Claude on Vertex


_CLAUDE_FEATURES = frozenset(
    {TOP_K, CONTEXT_MANAGEMENT, ANTHROPIC_TOOLS, ANTHROPIC_UNKNOWN, ANTHROPIC_BLOCKS}
)


def anthropic_body(body: dict[str, Any], stream: bool, default_max_tokens: int) -> dict[str, Any]:
    """The rawPredict body: the Messages body without `model`, with Vertex's version."""
    out = request_to_anthropic(body, default_max_tokens=default_max_tokens)
    out.pop("model", None)
    out.pop("stream", None)
    if stream:
        out["stream"] = True
    return {"anthropic_version": ANTHROPIC_VERSION, **out}


def vertex_error(status: int, data: Any) -> GatewayError:
    """Vertex's own errors are Google-shaped; a Claude model's come in Anthropic's shape."""
    if isinstance(data, dict) and data.get("type") == "error":
        return error_from_body(status, data)
    return error_from_google(status, data)


# --------------------------------------------------------------------------- the provider


class VertexProvider(Provider):
    options: VertexOptions

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        assert isinstance(options, VertexOptions)
        super().__init__(backend, options)
        base = (backend.base_url or default_base_url(options.location)).rstrip("/")
        self.prefix = (
            f"{base}/{options.api_version}/projects/{options.project}"
            f"/locations/{options.location}/publishers"
        )
        self.tokens = self._token_source()

    def _token_source(self) -> TokenSource | None:
        """None when the token is static or the client's own."""
        if self.backend.auth == "passthrough" or self.options.access_token is not None:
            return None
        if self.options.service_account_file is not None:
            return TokenSource(service_account_loader(self.options.service_account_file))
        return None if self.backend.has_api_key else TokenSource(default_credentials_loader)

    async def startup(self) -> None:
        if self.tokens is not None:
            await self.tokens.start()

    async def shutdown(self) -> None:
        if self.tokens is not None:
            await self.tokens.stop()

    def _token(self, ctx: RequestContext) -> str:
        if self.tokens is not None:
            self.tokens.ensure_running()
            token = self.tokens.current()
        elif self.options.access_token is not None and self.backend.auth == "gateway":
            token = self.options.access_token.get_secret_value()
        else:
            token = request_key(ctx, self.backend)
        if not token:
            raise GatewayError(
                503,
                "the backend's Google Cloud credentials have no valid access token yet",
                "server_error",
                "upstream_credentials_unavailable",
            )
        return token

    def native_wires(self, model: str) -> frozenset[str]:
        if publisher_for(model, self.options.publisher) == "anthropic":
            return frozenset({ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS})
        return frozenset({GEMINI_GENERATE, GEMINI_COUNT_TOKENS})

    def hub_features(self, model: str) -> frozenset[str]:
        """Claude on Vertex: `top_k`, context management, Anthropic's tools, the fields the
        gateway does not know and the blocks the chat shape cannot say (no service tiers, MCP
        connector or containers); Gemini: `top_k`."""
        if publisher_for(model, self.options.publisher) == "anthropic":
            return _CLAUDE_FEATURES
        return GEMINI_FEATURES

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The client's own body, to the model's publisher endpoint (rawPredict for Claude:
        the body without `model`, with Vertex's `anthropic_version`)."""
        publisher = publisher_for(model, self.options.publisher)
        url = f"{self.prefix}/{publisher}/models/{model_path(model)}:"
        headers = {"content-type": "application/json", **self.backend.headers}
        if call.wire == ANTHROPIC_COUNT_TOKENS:  # one endpoint for every Claude model
            url = f"{self.prefix}/anthropic/models/count-tokens:rawPredict"
            body = call.encoded(model=model, anthropic_version=ANTHROPIC_VERSION)
        elif publisher == "anthropic":
            url += "streamRawPredict" if call.stream else "rawPredict"
            body = call.encoded(model=None, anthropic_version=ANTHROPIC_VERSION)
        else:
            url += "countTokens" if call.wire == GEMINI_COUNT_TOKENS else method_name(call.stream)
            body = call.encoded()
        if publisher == "anthropic" and "anthropic-beta" in ctx.forwarded_headers():
            headers["anthropic-beta"] = ctx.forwarded_headers()["anthropic-beta"]
        headers["authorization"] = f"Bearer {self._token(ctx)}"
        return UpstreamRequest(call.method, url, headers, body, self.backend.timeout_seconds)

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        require_operation(request, self.backend)
        publisher = publisher_for(request.model, self.options.publisher)
        url = f"{self.prefix}/{publisher}/models/{model_path(request.model)}:"
        if publisher == "anthropic":
            url += "streamRawPredict" if request.stream else "rawPredict"
            body = anthropic_body(request.body, request.stream, self.options.default_max_tokens)
        else:
            url += method_name(request.stream)
            body = to_gemini_request(request.body, request.model)
        headers = {
            "content-type": "application/json",
            **self.backend.headers,
            "authorization": f"Bearer {self._token(ctx)}",
        }
        beta = ctx.forwarded_headers().get("anthropic-beta")  # an Anthropic client's betas
        if publisher == "anthropic" and beta:
            headers["anthropic-beta"] = beta
        return UpstreamRequest("POST", url, headers, dumps(body), self.backend.timeout_seconds)

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        if publisher_for(request.model, self.options.publisher) == "anthropic":
            return parse_message(status, body)
        return parse_gemini_answer(status, body, response_meta(ctx, request))

    def stream_decoder(self, ctx: RequestContext, request: CanonicalRequest) -> StreamDecoder:
        if publisher_for(request.model, self.options.publisher) == "anthropic":
            return AnthropicStreamDecoder(int(time.time()))
        return GeminiStreamDecoder(response_meta(ctx, request))

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return parse_google_error(self.backend, status, headers, body, vertex_error)


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            "vertex",
            VertexProvider,
            VertexOptions,
            "Google Vertex AI: Gemini (generateContent) and Claude (rawPredict) models",
        )
    ]
