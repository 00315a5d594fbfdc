"""Built-in plugin `anthropic_api`: the Anthropic Messages API as a client-facing API.

`POST /v1/messages` (streamed or not) is decoded into the canonical (OpenAI) form, so it
reaches any backend; answers, streams and errors go back in Anthropic's wire shape. The
translation is the pure code beside this module (`schema`, `request`, `response`, `stream`,
`errors`); this module is the `IngressAPI`.
"""

from __future__ import annotations

from collections.abc import Mapping

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.extension import Endpoint, IngressAPI
from modelway.plugins.ingress.anthropic.errors import error_object
from modelway.plugins.ingress.anthropic.request import to_openai_request
from modelway.plugins.ingress.anthropic.response import new_message_id, to_anthropic_message
from modelway.plugins.ingress.anthropic.schema import validate_request
from modelway.plugins.ingress.anthropic.stream import AnthropicStreamEncoder
from modelway.plugins.ingress.openai import parse_json_object
from modelway.providerkit import dumps

API = "anthropic"
MESSAGES_PATH = "/v1/messages"
_MESSAGES = Endpoint(API, Operation.CHAT, "messages")


def _stop_sequences(ctx: RequestContext) -> list[str]:
    stop = ctx.request.body.get("stop") if ctx.request else None
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []


def _model(ctx: RequestContext) -> str:
    return ctx.request.model if ctx.request else ""


class AnthropicAPI(IngressAPI):
    name = API
    paths = ("/v1/messages",)

    def match(self, method: str, path: str) -> Endpoint | None:
        return _MESSAGES if method == "POST" and path == MESSAGES_PATH else None

    def claims(self, path: str) -> bool:
        return path == MESSAGES_PATH

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> CanonicalRequest:
        request = validate_request(parse_json_object(body, headers))
        stream = request.stream is True
        # Anthropic streams always carry usage, so the gateway's usage chunk is kept.
        return CanonicalRequest(
            Operation.CHAT, request.model, to_openai_request(request), stream, stream
        )

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        message = to_anthropic_message(
            response.body,
            model=_model(ctx),
            stop_sequences=_stop_sequences(ctx),
            message_id=new_message_id(response.body.get("id")),
        )
        return dumps(message)

    def stream_encoder(self, ctx: RequestContext) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(new_message_id(), _model(ctx), _stop_sequences(ctx))

    def error_body(self, error: GatewayError) -> bytes:
        return dumps(error_object(error))


@hookimpl
def modelway_ingress_apis() -> list[IngressAPI]:
    return [AnthropicAPI()]
