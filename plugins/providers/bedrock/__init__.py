"""Built-in plugin `bedrock`: AWS Bedrock's Converse and ConverseStream APIs as a provider.

Requests go to `{base}/model/{modelId}/converse` (or `/converse-stream`) with the model id
URL-encoded, signed with SigV4 (botocore's signer, service `bedrock`) from configured
credentials, botocore's default credential chain, or sent with a Bedrock API key as a bearer
token. Streamed answers arrive as `application/vnd.amazon.eventstream` frames
(`eventstream`). The translation is the pure code beside this module (`request`,
`response`, `stream`, `errors`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.session import Session
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator
from yarl import URL

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, UpstreamRequest, Usage
from modelway.config import BackendConfig
from modelway.context import RequestContext
from modelway.errors import ConfigError, GatewayError
from modelway.extension import Provider, ProviderSpec
from modelway.plugins.providers.bedrock.errors import error_from_response, error_type
from modelway.plugins.providers.bedrock.request import (
    converse_request,
    features_for,
    model_fields,
)
from modelway.plugins.providers.bedrock.response import chat_completion
from modelway.plugins.providers.bedrock.stream import BedrockStreamDecoder, ConverseStreamTranslator
from modelway.providerkit import answer_object, dumps, rejected_credentials, request_key

SIGNING_NAME = "bedrock"
EVENTSTREAM = "application/vnd.amazon.eventstream"


class BedrockOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str
    """The AWS region, e.g. us-east-1 (also the signing region)."""
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    default_credentials: bool = False
    """Use botocore's default credential chain (environment, shared files, instance role)."""
    additional_model_request_fields: dict[str, Any] | None = None
    """Model-specific fields sent as Converse's `additionalModelRequestFields`."""

    @model_validator(mode="after")
    def _key_pair(self) -> BedrockOptions:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token needs access_key_id and secret_access_key")
        return self


def static_credentials(options: BedrockOptions) -> Credentials | None:
    """The configured key pair (and session token), if any."""
    if not (options.access_key_id and options.secret_access_key):
        return None
    token = options.session_token.get_secret_value() if options.session_token else None
    return Credentials(options.access_key_id, options.secret_access_key.get_secret_value(), token)


class BedrockProvider(Provider):
    stream_content_types = (EVENTSTREAM,)
    options: BedrockOptions

    def __init__(self, backend: BackendConfig, options: BaseModel | None) -> None:
        if not isinstance(options, BedrockOptions):
            raise ConfigError("provider 'bedrock' needs options (at least `region`)")
        super().__init__(backend, options)
        host = f"https://bedrock-runtime.{options.region}.amazonaws.com"
        self.base_url = (backend.base_url or host).rstrip("/")
        self._signer_credentials = self._credentials()

    def _credentials(self) -> Credentials | None:
        """Static keys, botocore's chain, or None for bearer auth (API key or passthrough)."""
        static = static_credentials(self.options)
        if static is not None:
            return static
        if self.options.default_credentials:
            found = Session().get_credentials()
            if found is None:
                raise ConfigError("provider 'bedrock': botocore found no AWS credentials")
            return found
        if self.backend.auth == "passthrough" or self.backend.has_api_key:
            return None
        raise ConfigError(
            "provider 'bedrock' needs access_key_id and secret_access_key, "
            "default_credentials: true, or an api_key (a Bedrock API key)"
        )

    def hub_features(self, model: str) -> frozenset[str]:
        return features_for(model)

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        action = "converse-stream" if request.stream else "converse"
        url = self._url(request.model, action)
        body = converse_request(request.body)
        extra = {
            **(self.options.additional_model_request_fields or {}),
            **model_fields(request.body, request.model),
        }
        if extra:
            body["additionalModelRequestFields"] = extra
        data = dumps(body)
        headers = {"content-type": "application/json", **self.backend.headers}
        headers = self._authorize(ctx, url, headers, data)
        return UpstreamRequest("POST", url, headers, data, self.backend.timeout_seconds)

    def _url(self, model_id: str, action: str) -> str:
        """The URL as the HTTP client will send it: the model id percent-encoded (ARNs hold
        ':' and '/'), then normalized the way the client's URL library does, so that the
        signature covers exactly the path on the wire."""
        path = "/model/" + quote(model_id, safe="") + "/" + action
        return str(URL(self.base_url + path))

    def _authorize(
        self, ctx: RequestContext, url: str, headers: dict[str, str], data: bytes
    ) -> dict[str, str]:
        if self.backend.auth == "passthrough" or self._signer_credentials is None:
            key = request_key(ctx, self.backend)
            return {**headers, "authorization": f"Bearer {key}"} if key else headers
        return sign(self._frozen(), self.options.region, url, headers, data)

    def _frozen(self) -> Credentials | ReadOnlyCredentials:
        credentials = self._signer_credentials
        assert credentials is not None
        return credentials.get_frozen_credentials()

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        data = answer_object(body)
        answer = chat_completion(
            data, response_id=_response_id(ctx), model=request.model, created=int(time.time())
        )
        return CanonicalResponse(answer, Usage.from_openai(answer.get("usage")), status)

    def stream_decoder(
        self, ctx: RequestContext, request: CanonicalRequest
    ) -> BedrockStreamDecoder:
        translator = ConverseStreamTranslator(_response_id(ctx), request.model, int(time.time()))
        return BedrockStreamDecoder(translator)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        what = "AWS credentials, region and model access"
        denied = rejected_credentials(
            self.backend, status, what=what, reason=error_type(headers, None)
        )
        return denied or error_from_response(status, headers, body)


def sign(
    credentials: Credentials | ReadOnlyCredentials,
    region: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
) -> dict[str, str]:
    """`headers` plus SigV4's `x-amz-date`, `authorization` (and `x-amz-security-token`),
    signing exactly `url`, `headers` and `body` as they will be sent."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials, SIGNING_NAME, region).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def _response_id(ctx: RequestContext) -> str:
    return f"chatcmpl-{ctx.id}"


@hookimpl
def modelway_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            "bedrock",
            BedrockProvider,
            BedrockOptions,
            "AWS Bedrock (Converse and ConverseStream, SigV4 or a Bedrock API key)",
            default_hosts=("bedrock-runtime.*.amazonaws.com",),
        )
    ]
