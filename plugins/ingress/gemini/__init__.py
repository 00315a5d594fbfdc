"""Built-in plugin `gemini_api`: Google's Gemini API (generativelanguage) as a client-facing API.

`POST /{v1,v1beta,v1alpha}/models/{model}:generateContent`, `:streamGenerateContent` (always
answered as `alt=sse`, the form every Google SDK asks for) and `:countTokens`. A Gemini or
Vertex Gemini backend receives the client's own body (the same-API lane): thinking config,
thought parts and signatures, safety settings, grounding, cached content and every future
field pass both ways. Any other backend gets the request translated through the canonical
form; answers, streams and errors go back in Gemini's wire shape. The model comes from the
URL path. Field names are read in either of the spellings Google accepts (`maxOutputTokens`
or `max_output_tokens`). Other Gemini endpoints (`embedContent`, `cachedContents`, `files`
...) pass through to Gemini backends; on Google's paths (and with `x-goog-api-key` or
`?key=`) the gateway's own errors are in Google's shape, a path it does not serve included.
`GET .../models` and `.../models/{model}` are answered by the gateway in Google's shape
(`models`). Uploads (`/upload/v1beta/files`, resumable) pass through too; the `gemini`
provider keeps their upload URL on the gateway, signed for the client.

`thinkingConfig` and thought parts become the hub's reasoning fields (`reasoning`). What
does not translate to other providers: `safetySettings`, logprobs and speech settings are
accepted and not forwarded (`topK` is the hub's `top_k`: see `modelway.hubfit`);
`cachedContent`, built-in tools (Google Search, code execution, ...) and non-text response
modalities are refused with a 400, since no backend behind the canonical form could honour
them. This module is the `IngressAPI`; the pure translation is beside it (`request` with
`options` and `fields`, `response`, `stream`, `errors`), the same-API views in `native`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.ingress import Endpoint, IngressAPI, LocalAnswer, WireSupport
from modelway.plugins.ingress.gemini.errors import error_object
from modelway.plugins.ingress.gemini.fields import get, list_at
from modelway.plugins.ingress.gemini.models import models_answer, models_endpoint
from modelway.plugins.ingress.gemini.native import CountTokensWire, GenerateWire, OtherWire
from modelway.plugins.ingress.gemini.request import to_openai_request
from modelway.plugins.ingress.gemini.response import to_gemini_response
from modelway.plugins.ingress.gemini.stream import GeminiStreamEncoder
from modelway.plugins.ingress.openai import parse_json_object
from modelway.providerkit import dumps
from modelway.runtime import Gateway
from modelway.wire import GEMINI_COUNT_TOKENS, GEMINI_GENERATE, PASSTHROUGH, Call

__all__ = [
    "GeminiAPI",
    "GeminiEndpoint",
    "GeminiStreamEncoder",
    "error_object",
    "to_gemini_response",
    "to_openai_request",
]

API = "gemini"
GENERATE = "generateContent"
STREAM = "streamGenerateContent"
_PATH = re.compile(
    r"/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)"
)


@dataclass(frozen=True)
class GeminiEndpoint(Endpoint):
    """A generateContent call: the model and streaming come from the URL, not the body."""

    model: str = ""
    stream: bool = False


# --------------------------------------------------------------------------- the API

COUNT = "countTokens"
_METHODS = {GENERATE: GEMINI_GENERATE, STREAM: GEMINI_GENERATE, COUNT: GEMINI_COUNT_TOKENS}
_OTHER = Endpoint(API, Operation.OTHER, "other", wire=PASSTHROUGH)
_UPLOAD = Endpoint(API, Operation.OTHER, "upload", wire=PASSTHROUGH)
_UPLOAD_PATH = re.compile(r"/upload/(v1|v1beta|v1alpha)/.+")
"""Google's uploads (resumable: the start, then the bytes to the upload URL it answers)."""
_OTHER_PATH = re.compile(
    r"/(v1beta|v1alpha)/.+|/v1/(models|tunedModels|cachedContents|files)/[^?]*:.+"
)

_GOOGLE_V1 = re.compile(r"/v1/(files|cachedContents|tunedModels|batches|operations)(/[^?]*)?")
"""Google's `/v1` resources without a `:method`, some of which OpenAI has too."""
_GOOGLE_PATH = re.compile(r"/(upload/)?(v1beta|v1alpha)(/|$)|/upload/|/v1/[^?]*:[A-Za-z]+$")


def _model(ctx: RequestContext) -> str:
    return ctx.model or ""


class GeminiAPI(IngressAPI):
    name = API
    paths = (
        "/v1beta/models/{model}:generateContent",
        "/v1beta/models/{model}:streamGenerateContent",
        "/v1beta/models/{model}:countTokens",
    )

    def __init__(self) -> None:
        generate = GenerateWire(error_object)
        self._wires: dict[str, WireSupport] = {
            w.name: w for w in (generate, CountTokensWire(error_object), OtherWire(error_object))
        }

    def match(self, method: str, path: str) -> Endpoint | None:
        """generateContent and its siblings; the models list (on `/v1/models` asked of this
        API first only for a Google client: OpenAI's and Anthropic's come before it)."""
        found = _PATH.fullmatch(path)
        if method != "POST" or found is None or found["method"] not in _METHODS:
            return models_endpoint(method, path)
        stream = found["method"] == STREAM
        model = unquote(found["model"])
        operation = Operation.COUNT_TOKENS if found["method"] == COUNT else Operation.CHAT
        wire = _METHODS[found["method"]]
        method = found["method"]
        return GeminiEndpoint(API, operation, method, wire=wire, model=model, stream=stream)

    def claims(self, path: str) -> bool:
        found = _PATH.fullmatch(path)
        return found is not None and found["method"] in _METHODS

    def fallback(self, method: str, path: str) -> Endpoint | None:
        """Other methods pass through; so does the models list in forward mode (the real
        host answers it)."""
        if _UPLOAD_PATH.fullmatch(path):
            return _UPLOAD
        if _OTHER_PATH.fullmatch(path) or models_endpoint(method, path) is not None:
            return _OTHER
        return None

    def own_fallback(self, method: str, path: str) -> Endpoint | None:
        """A Google client's `/v1/files`, `/v1/cachedContents` ... are Gemini's, not OpenAI's."""
        return _OTHER if _GOOGLE_V1.fullmatch(path) else self.fallback(method, path)

    def recognizes(self, path: str, headers: Mapping[str, str]) -> bool:
        """Google's paths (`/v1beta/...`, uploads, `model:method`) or its key header (a
        `?key=` is one: `modelway.clients.take_query_key`): the gateway's errors there are in
        Google's shape."""
        return "x-goog-api-key" in headers or _GOOGLE_PATH.match(path) is not None

    def wire(self, name: str) -> WireSupport:
        return self._wires[name]

    async def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        return models_answer(endpoint, ctx, gateway.exposed_models())

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Call:
        if endpoint is _UPLOAD:  # a file's bytes (in any content type), or the start's JSON
            content_type = headers.get("content-type", "")
            return Call(
                PASSTHROUGH, Operation.OTHER, "", {}, body, content_type=content_type, query=query
            )
        if endpoint is _OTHER:
            data = parse_json_object(body, headers) if body.strip() else {}
            return Call(PASSTHROUGH, Operation.OTHER, "", data, body, query=query)
        assert isinstance(endpoint, GeminiEndpoint) and endpoint.wire is not None
        data = parse_json_object(body, headers)
        contents = get(data, "contents")
        if endpoint.wire == GEMINI_GENERATE or contents is not None:
            list_at(contents, "contents")
        # Gemini answers always carry usageMetadata, so a translated stream keeps the usage.
        return Call(
            endpoint.wire, endpoint.operation, endpoint.model, data, body, endpoint.stream, True
        )

    def to_hub(self, call: Call) -> CanonicalRequest:
        if call.wire == PASSTHROUGH:
            raise GatewayError(
                400, "this endpoint is passed through to Gemini backends only", code="unsupported"
            )
        body = call.body
        if call.wire == GEMINI_COUNT_TOKENS:  # a count of a whole generateContentRequest
            inner = get(body, "generateContentRequest")
            body = inner if isinstance(inner, dict) else body
        request = to_openai_request(body, call.model, call.stream)
        return CanonicalRequest(call.operation, call.model, request, call.stream, True)

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        if ctx.call is not None and ctx.call.operation is Operation.COUNT_TOKENS:
            return dumps({"totalTokens": response.body.get("input_tokens", 0)})
        return dumps(to_gemini_response(response.body, _model(ctx)))

    def stream_encoder(self, ctx: RequestContext) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(_model(ctx))

    def error_body(self, error: GatewayError) -> bytes:
        return dumps(error_object(error))


@hookimpl
def modelway_ingress_apis() -> list[IngressAPI]:
    return [GeminiAPI()]
