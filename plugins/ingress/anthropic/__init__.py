"""Built-in plugin `anthropic_api`: the Anthropic Messages API as a client-facing API.

`POST /v1/messages` (streamed or not) and `POST /v1/messages/count_tokens`. A backend that
speaks Anthropic's API itself (`anthropic`, Vertex AI Claude) receives the client's own body
and headers (`anthropic-beta`, `anthropic-version`): thinking and its signatures, cache
markers, documents, server tools, context management and every future field pass both ways.
Any other backend gets the request translated through the canonical form (translation in
`schema`, `request`, `response`, `stream`, `errors` beside this module); answers, streams and
errors go back in Anthropic's wire shape. An Anthropic client's other requests (`other`):
`GET /v1/models` in Anthropic's shape, and every other `/v1/*` endpoint
(`/v1/messages/batches`, `/v1/files` ...) passed through as it is, with Anthropic's feature
headers, to the backend of a route whose `match.path` names it; the gateway's own errors
there are in Anthropic's shape too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelway import hookimpl, jsonx
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.context import RequestContext
from modelway.errors import GatewayError, bad_request
from modelway.ingress import Endpoint, IngressAPI, LocalAnswer, WireSupport
from modelway.plugins.ingress.anthropic import other
from modelway.plugins.ingress.anthropic.errors import error_object
from modelway.plugins.ingress.anthropic.native import CountTokensWire, MessagesWire, OtherWire
from modelway.plugins.ingress.anthropic.request import (
    hub_extras,
    split_own_tools,
    to_openai_request,
)
from modelway.plugins.ingress.anthropic.response import new_message_id, to_anthropic_message
from modelway.plugins.ingress.anthropic.schema import validate_request
from modelway.plugins.ingress.anthropic.stream import AnthropicStreamEncoder
from modelway.plugins.ingress.openai import other_call, parse_json_object
from modelway.runtime import Gateway
from modelway.wire import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES, Call

API = "anthropic"
MESSAGES_PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
_MESSAGES = Endpoint(API, Operation.CHAT, "messages", wire=ANTHROPIC_MESSAGES)
_COUNT = Endpoint(API, Operation.COUNT_TOKENS, "messages.count_tokens", wire=ANTHROPIC_COUNT_TOKENS)
_WIRES: dict[str, WireSupport] = {
    w.name: w for w in (MessagesWire(), CountTokensWire(), OtherWire())
}


def _stop_sequences(ctx: RequestContext) -> list[str]:
    stop = ctx.call.body.get("stop_sequences") if ctx.call else None
    return [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []


def _model(ctx: RequestContext) -> str:
    return ctx.model or ""


def check_body(data: dict[str, Any], counting: bool) -> None:
    """What the gateway itself relies on; the rest is the backend's to judge."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model: Field required", param="model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages: Field required (a non-empty list)", param="messages")
    for index, message in enumerate(messages):
        # Which roles exist is the backend's to judge (Claude Code sends `system` messages
        # mid-conversation); a translation checks what it can translate.
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(
                f"messages.{index}.role: Field required", param=f"messages.{index}.role"
            )
    if not counting:
        tokens = data.get("max_tokens")
        if tokens is None:
            raise bad_request("max_tokens: Field required", param="max_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise bad_request("max_tokens: Input should be a valid integer", param="max_tokens")
        if tokens < 1:
            raise bad_request(
                "max_tokens: Input should be greater than or equal to 1", param="max_tokens"
            )
    if "stream" in data and not isinstance(data["stream"], bool):
        raise bad_request("stream: Input should be a valid boolean", param="stream")


class AnthropicAPI(IngressAPI):
    name = API
    paths = (MESSAGES_PATH, COUNT_PATH)

    def match(self, method: str, path: str) -> Endpoint | None:
        if method != "POST":
            return other.models_endpoint(method, path)
        return {MESSAGES_PATH: _MESSAGES, COUNT_PATH: _COUNT}.get(path)

    def claims(self, path: str) -> bool:
        return path in (MESSAGES_PATH, COUNT_PATH)

    def fallback(self, method: str, path: str) -> Endpoint | None:
        return other.other_endpoint(path)

    def recognizes(self, path: str, headers: Mapping[str, str]) -> bool:
        return other.recognizes(path, headers)

    async def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        return other.models_answer(endpoint, ctx, gateway.exposed_models())

    def wire(self, name: str) -> WireSupport:
        return _WIRES[name]

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Call:
        if endpoint is other.OTHER:
            return other_call(body, headers, query)
        data = parse_json_object(body, headers)
        counting = endpoint is _COUNT
        check_body(data, counting)
        stream = not counting and data.get("stream") is True
        assert endpoint.wire is not None
        # Anthropic streams always carry usage, so a translated stream keeps the usage chunk.
        return Call(endpoint.wire, endpoint.operation, data["model"], data, body, stream, stream)

    def to_hub(self, call: Call) -> CanonicalRequest:
        if call.wire not in (ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS):
            raise GatewayError(
                400,
                f"{call.method} {call.path} is passed through to Anthropic backends only, and "
                "this route's backend is not one",
                code="unsupported_endpoint",
            )
        data = call.body if call.wire == ANTHROPIC_MESSAGES else {"max_tokens": 1, **call.body}
        data, own_tools = split_own_tools(data)
        request = validate_request(data)
        body = {**to_openai_request(request), **hub_extras(data, own_tools)}
        return CanonicalRequest(call.operation, request.model, body, call.stream, call.stream)

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        if ctx.call is not None and ctx.call.operation is Operation.COUNT_TOKENS:
            return jsonx.dumps({"input_tokens": response.body.get("input_tokens", 0)})
        message = to_anthropic_message(
            response.body,
            model=_model(ctx),
            stop_sequences=_stop_sequences(ctx),
            message_id=new_message_id(response.body.get("id")),
        )
        return jsonx.dumps(message)

    def stream_encoder(self, ctx: RequestContext) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(new_message_id(), _model(ctx), _stop_sequences(ctx))

    def error_body(self, error: GatewayError) -> bytes:
        return jsonx.dumps(error_object(error))


@hookimpl
def modelway_ingress_apis() -> list[IngressAPI]:
    return [AnthropicAPI()]
