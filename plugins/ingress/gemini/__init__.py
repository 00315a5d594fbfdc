"""Built-in plugin `gemini_api`: Google's Gemini API (generativelanguage) as a client-facing API.

`POST /{v1,v1beta,v1alpha}/models/{model}:generateContent` and `:streamGenerateContent` (always
answered as `alt=sse`, the form every Google SDK asks for) are decoded into the canonical
(OpenAI chat-completions) form, so they reach any backend and every policy; answers, streams
and errors go back in Gemini's wire shape. The model comes from the URL path. Field names are
read in either of the spellings Google accepts (`maxOutputTokens` or `max_output_tokens`).

What does not translate: `safetySettings`, `topK`, `thinkingConfig`, logprobs and speech
settings are accepted and not forwarded; `cachedContent`, built-in tools (Google Search, code
execution, ...) and non-text response modalities are refused with a 400, since no backend
behind the canonical form could honour them. This module is the `IngressAPI`; the pure
translation is beside it (`request` with `options` and `fields`, `response`, `stream`,
`errors`).
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
from modelway.extension import Endpoint, IngressAPI
from modelway.plugins.ingress.gemini.errors import error_object
from modelway.plugins.ingress.gemini.request import to_openai_request
from modelway.plugins.ingress.gemini.response import to_gemini_response
from modelway.plugins.ingress.gemini.stream import GeminiStreamEncoder
from modelway.plugins.ingress.openai import parse_json_object
from modelway.providerkit import dumps

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


def _model(ctx: RequestContext) -> str:
    return ctx.request.model if ctx.request else ""


class GeminiAPI(IngressAPI):
    name = API
    paths = (
        "/v1beta/models/{model}:generateContent",
        "/v1beta/models/{model}:streamGenerateContent",
    )

    def match(self, method: str, path: str) -> Endpoint | None:
        found = _PATH.fullmatch(path)
        if method != "POST" or found is None or found["method"] not in (GENERATE, STREAM):
            return None
        stream = found["method"] == STREAM
        model = unquote(found["model"])
        return GeminiEndpoint(API, Operation.CHAT, found["method"], model=model, stream=stream)

    def claims(self, path: str) -> bool:
        found = _PATH.fullmatch(path)
        return found is not None and found["method"] in (GENERATE, STREAM)

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> CanonicalRequest:
        assert isinstance(endpoint, GeminiEndpoint)
        data = parse_json_object(body, headers)
        request = to_openai_request(data, endpoint.model, endpoint.stream)
        # Gemini answers always carry usageMetadata, so the gateway's usage chunk is kept.
        return CanonicalRequest(Operation.CHAT, endpoint.model, request, endpoint.stream, True)

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        return dumps(to_gemini_response(response.body, _model(ctx)))

    def stream_encoder(self, ctx: RequestContext) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(_model(ctx))

    def error_body(self, error: GatewayError) -> bytes:
        return dumps(error_object(error))


@hookimpl
def modelway_ingress_apis() -> list[IngressAPI]:
    return [GeminiAPI()]
