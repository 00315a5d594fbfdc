"""Built-in plugin `bedrock`: AWS Bedrock's Converse and ConverseStream APIs as a provider.

Requests go to `{base}/model/{modelId}/converse` (or `/converse-stream`) with the model id
URL-encoded, signed with SigV4 (botocore's signer, service `bedrock`) from configured
credentials, botocore's default credential chain, or sent with a Bedrock API key as a bearer
token. Streamed answers arrive as `application/vnd.amazon.eventstream` frames. The
translation itself lives in `modelway.plugins.providers.bedrock.wire`.
"""

from __future__ import annotations

import json
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
from modelway.errors import ConfigError, GatewayError, upstream_error
from modelway.extension import Provider, ProviderSpec
from modelway.plugins.providers.bedrock.wire import (
    ConverseStreamTranslator,
    EventMessage,
    EventStreamDecoder,
    chat_completion,
    converse_request,
    error_from_response,
    error_type,
    stream_exception,
)

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


class BedrockStreamDecoder:
    """ConverseStream bytes to canonical chunks. An exception message raises GatewayError,
    after the chunks of the events before it (held back to the next call if need be)."""

    def __init__(self, translator: ConverseStreamTranslator) -> None:
        self._frames = EventStreamDecoder()
        self._translator = translator
        self._error: GatewayError | None = None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        if self._error is not None:
            raise self._error
        chunks: list[dict[str, Any]] = []
        try:
            for message in self._frames.feed(data):
                chunks.extend(self._chunks(message))
        except GatewayError as error:
            if not chunks:
                raise
            self._error = error
        return chunks

    def close(self) -> list[dict[str, Any]]:
        if self._error is not None:
            raise self._error
        self._frames.close()
        return []

    def _chunks(self, message: EventMessage) -> list[dict[str, Any]]:
        if (message.header(":message-type") or "event") != "event":
            raise stream_exception(message)
        payload = _json_object(
            message.payload or b"{}",
            "the backend's stream has an event that is not a JSON object",
            "upstream_invalid_stream",
        )
        return self._translator.event(message.header(":event-type") or "", payload)


def _json_object(data: bytes, problem: str, code: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise upstream_error(502, problem, code)
    return value


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

    def build_request(self, ctx: RequestContext, request: CanonicalRequest) -> UpstreamRequest:
        action = "converse-stream" if request.stream else "converse"
        url = self._url(request.model, action)
        body = converse_request(request.body)
        if self.options.additional_model_request_fields:
            body["additionalModelRequestFields"] = self.options.additional_model_request_fields
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
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
        if self.backend.auth == "passthrough":
            key = ctx.client.api_key
            return {**headers, "authorization": f"Bearer {key}"} if key else headers
        if self._signer_credentials is None:
            assert self.backend.api_key is not None
            key = self.backend.api_key.get_secret_value()
            return {**headers, "authorization": f"Bearer {key}"}
        return sign(self._frozen(), self.options.region, url, headers, data)

    def _frozen(self) -> Credentials | ReadOnlyCredentials:
        credentials = self._signer_credentials
        assert credentials is not None
        return credentials.get_frozen_credentials()

    def parse_response(
        self, ctx: RequestContext, request: CanonicalRequest, status: int, body: bytes
    ) -> CanonicalResponse:
        data = _json_object(
            body, "the backend's answer is not a JSON object", "upstream_invalid_response"
        )
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
        if status in (401, 403) and self.backend.auth == "gateway":
            kind = error_type(headers, None) or f"HTTP {status}"
            return upstream_error(
                502,
                f"the backend rejected the gateway's credentials ({kind}); "
                "check the backend's AWS credentials, region and model access",
                "upstream_auth_failed",
            )
        return error_from_response(status, headers, body)


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
