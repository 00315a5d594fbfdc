"""Built-in plugin `azure`: Azure OpenAI as a provider, on top of the OpenAI provider.

Azure speaks OpenAI's wire format (bodies, streams, errors); what differs is the URL and the
auth header. Two URL styles:

- `deployments` (default): `{endpoint}/openai/deployments/{deployment}/chat/completions
  ?api-version=...` (and `/embeddings`); `api_version` is required.
- `v1`: `{endpoint}/openai/v1/chat/completions` with the deployment name as the body's
  `model`; `api_version` is optional there (e.g. `preview`).

`{endpoint}` is `base_url`, or `https://{resource}.openai.azure.com`. Auth is the `api-key`
header by default, or `Authorization: Bearer` (`auth_scheme: bearer`, e.g. an Entra ID token
given as `api_key`).
"""

from __future__ import annotations

import datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, Operation, UpstreamRequest
from modelway.config import BackendConfig
from modelway.context import RequestContext
from modelway.errors import ConfigError, GatewayError
from modelway.extension import ProviderSpec
from modelway.plugins.providers.openai import OpenAIOptions, OpenAIProvider, OpenAIStreamDecoder
from modelway.plugins.providers.responses import lane
from modelway.providerkit import request_key
from modelway.sse import SSEEvent
from modelway.wire import OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RESPONSES, Call

_PATHS = {Operation.CHAT: "/chat/completions", Operation.EMBEDDINGS: "/embeddings"}
_SUFFIXES = ("/openai/v1", "/openai")


class AzureOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployment: str | None = None
    """The deployment name (default: the model name the backend sends)."""
    api_version: str | None = None
    """The `api-version` query parameter, e.g. 2024-10-21 (required for `deployments`)."""
    resource: str | None = None
    """The Azure OpenAI resource name; builds the endpoint when `base_url` is not given."""
    auth_scheme: Literal["api-key", "bearer"] = "api-key"
    path_style: Literal["deployments", "v1"] = "deployments"
    stream_usage: bool = True
    """Ask for usage in streams (`stream_options.include_usage`)."""
    responses: bool | None = None
    """Whether the resource serves the Responses API to Responses clients on the same-API
    lane (`/openai/v1/responses`, or `/openai/responses?api-version=` for `deployments`).
    Default: yes with `path_style: v1`."""

    @field_validator("api_version", mode="before")
    @classmethod
    def _unquoted_date(cls, value: Any) -> Any:
        """`api_version: 2024-10-21` without quotes is a date to YAML; take it as meant."""
        return value.isoformat() if isinstance(value, datetime.date) else value

    @model_validator(mode="after")
    def _version_for_deployments(self) -> AzureOptions:
        if self.path_style == "deployments" and not self.api_version:
            raise ValueError(
                "api_version is required (e.g. 2024-10-21) with path_style deployments"
            )
        return self


class AzureStreamDecoder(OpenAIStreamDecoder):
    """OpenAI's decoder, minus Azure's content-filter-only chunks (`choices: []` and no usage),
    which the OpenAI API never sends."""

    def translate(self, event: SSEEvent) -> list[dict[str, Any]]:
        return [c for c in super().translate(event) if not _filter_only(c)]


def _filter_only(chunk: dict[str, Any]) -> bool:
    return chunk.get("choices") == [] and chunk.get("usage") is None


class AzureProvider(OpenAIProvider):
    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        if not isinstance(options, AzureOptions):
            raise ConfigError("provider 'azure' needs options (at least `api_version`)")
        responses = options.path_style == "v1" if options.responses is None else options.responses
        super().__init__(
            backend,
            OpenAIOptions(stream_usage=options.stream_usage, responses=responses, top_k=False),
        )
        self.azure = options
        self._official = True  # Azure OpenAI takes no reasoning_content either
        self.endpoint = azure_endpoint(backend.base_url, options.resource)

    def _auth(self, ctx: RequestContext) -> dict[str, str]:
        key = request_key(ctx, self.backend)
        if not key:
            return {}
        if self.azure.auth_scheme == "bearer":
            return {"authorization": f"Bearer {key}"}
        return {"api-key": key}

    native = frozenset({OPENAI_CHAT, OPENAI_EMBEDDINGS})
    native_streams = False  # Azure's content-filter chunks are removed by its decoder

    def streams_natively(self, wire: str) -> bool:
        """Responses streams carry no content-filter chunks: they stay on the same-API lane."""
        return wire == OPENAI_RESPONSES

    def build_native(self, ctx: RequestContext, call: Call, model: str) -> UpstreamRequest:
        """The client's own body at Azure's URL (the v1 style takes the deployment as the
        body's model)."""
        deployment = self.azure.deployment or model
        style = self.azure.path_style
        if call.wire == OPENAI_RESPONSES:
            wire = super().build_native(ctx, call, deployment)
            wire.url = azure_responses_url(self.endpoint, style, wire.url, self.azure.api_version)
            return wire
        wire = super().build_native(ctx, call, deployment if style == "v1" else model)
        version = self.azure.api_version
        wire.url = azure_url(self.endpoint, style, deployment, call.operation, version)
        return wire

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        deployment = self.azure.deployment or request.model
        if self.azure.path_style == "v1" and request.body.get("model") != deployment:
            body = {**request.body, "model": deployment}
            request = CanonicalRequest(
                request.operation, deployment, body, request.stream, request.client_wants_usage
            )
        wire = super().build_request(ctx, request)
        if ctx.call is not None and ctx.call.wire in self.native:
            # An OpenAI client's stream decoded for its content-filter chunks: still the
            # client's API, so its feature headers (openai-beta, idempotency-key) go too.
            wire.headers.update(ctx.forwarded_headers())
        wire.url = azure_url(
            self.endpoint,
            self.azure.path_style,
            deployment,
            request.operation,
            self.azure.api_version,
        )
        return wire

    def stream_decoder(self, ctx: RequestContext, request: CanonicalRequest) -> AzureStreamDecoder:
        return AzureStreamDecoder()


def azure_endpoint(base_url: str | None, resource: str | None) -> str:
    """The resource endpoint (no `/openai` suffix), from `base_url` or the resource name."""
    if base_url:
        endpoint = base_url.rstrip("/")
        for suffix in _SUFFIXES:
            if endpoint.endswith(suffix):
                return endpoint[: -len(suffix)]
        return endpoint
    if resource:
        return f"https://{resource}.openai.azure.com"
    raise ConfigError("provider 'azure' needs `resource` or `base_url`")


def azure_responses_url(endpoint: str, style: str, openai_url: str, api_version: str | None) -> str:
    """The Responses API URL on Azure for the URL the OpenAI lane made (path and query)."""
    rest = openai_url[openai_url.index(lane.RESPONSES_PATH) :]
    path, _, query = rest.partition("?")
    prefix = "/openai/v1" if style == "v1" else "/openai"
    params = [f"api-version={quote(api_version, safe='')}"] if api_version else []
    params += [query] if query else []
    return f"{endpoint}{prefix}{path}" + ("?" + "&".join(params) if params else "")


def azure_url(
    endpoint: str, style: str, deployment: str, operation: Operation, api_version: str | None
) -> str:
    """The full URL of one Azure OpenAI operation."""
    path = _PATHS.get(operation)
    if path is None:
        raise GatewayError(
            400, f"Azure OpenAI cannot serve {operation}", code="unsupported_operation"
        )
    if style == "v1":
        url = f"{endpoint}/openai/v1{path}"
    else:
        url = f"{endpoint}/openai/deployments/{quote(deployment, safe='')}{path}"
    return url + ("?" + urlencode({"api-version": api_version}) if api_version else "")


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            "azure",
            AzureProvider,
            AzureOptions,
            "Azure OpenAI (deployment URLs with api-version, or the v1 API)",
            requires_api_key=True,
            default_hosts=("*.openai.azure.com",),
        )
    ]
