"""The OpenAI API as a client-facing API: chat completions, embeddings, models, and every other
`/v1/*` endpoint passed through.

Chat and embeddings requests are validated (types of the fields the gateway relies on;
unknown fields kept) and go to an OpenAI-compatible backend as the client's own body (the
same-API lane), or translated to another provider through the canonical form, which is this
API's shape already. Any other `/v1/*` endpoint (`/v1/completions`, `/v1/moderations`,
`/v1/files`, `/v1/batches`, `/v1/images/*`, `/v1/audio/*`, stored chat completions ...) is
passed through to an OpenAI-compatible backend chosen by the body's `model` or a route's
`match.path`. Answers, streams and errors are in OpenAI's wire shape.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError

from modelway import hookimpl, jsonx
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.configload import format_path
from modelway.context import RequestContext
from modelway.errors import GatewayError, bad_request
from modelway.ingress import Endpoint, IngressAPI, LocalAnswer, WireSupport
from modelway.plugins.ingress.openai.native import (
    ChatWire,
    EmbeddingsWire,
    OtherWire,
    error_object,
    stream_error,
)
from modelway.plugins.ingress.openai.schema import ChatCompletionRequest, EmbeddingsRequest
from modelway.runtime import Gateway
from modelway.wire import OPENAI_CHAT, OPENAI_EMBEDDINGS, PASSTHROUGH, Call

__all__ = ["OpenAIAPI", "error_object", "other_call", "parse_json_object"]

API = "openai"
_CHAT = Endpoint(API, Operation.CHAT, "chat.completions", wire=OPENAI_CHAT)
_EMBEDDINGS = Endpoint(API, Operation.EMBEDDINGS, "embeddings", wire=OPENAI_EMBEDDINGS)
_MODELS = Endpoint(API, Operation.MODELS, "models.list", local=True)
_MODEL = Endpoint(API, Operation.MODELS, "models.retrieve", local=True)
_OTHER = Endpoint(API, Operation.OTHER, "other", wire=PASSTHROUGH)

_ROUTES = {
    ("POST", "/chat/completions"): _CHAT,
    ("POST", "/embeddings"): _EMBEDDINGS,
    ("GET", "/models"): _MODELS,
}
_SCHEMAS: dict[Operation, type[BaseModel]] = {
    Operation.CHAT: ChatCompletionRequest,
    Operation.EMBEDDINGS: EmbeddingsRequest,
}
_WIRES: dict[str, WireSupport] = {w.name: w for w in (ChatWire(), EmbeddingsWire(), OtherWire())}
_STARTED = int(time.time())


def _strip_prefix(path: str) -> str:
    return path[3:] if path.startswith("/v1/") else path


class OpenAIStreamEncoder:
    content_type = "text/event-stream"

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + jsonx.dumps(chunk) + b"\n\n"

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, error: GatewayError) -> bytes:
        return stream_error(error)


class OpenAIAPI(IngressAPI):
    name = API
    paths = ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/*")

    def match(self, method: str, path: str) -> Endpoint | None:
        path = _strip_prefix(path)
        endpoint = _ROUTES.get((method, path))
        if endpoint is None and method == "GET" and path.startswith("/models/"):
            return _MODEL
        if endpoint is None and _stored_completions(method, path):
            return _OTHER
        return endpoint

    def claims(self, path: str) -> bool:
        return _strip_prefix(path) in {"/chat/completions", "/embeddings", "/models"}

    def fallback(self, method: str, path: str) -> Endpoint | None:
        # `/v1/models/{m}:method` is Gemini's (a method after a colon), not OpenAI's.
        if not path.startswith("/v1/") or ":" in path.rsplit("/", 1)[-1]:
            return None
        return _OTHER

    def wire(self, name: str) -> WireSupport:
        return _WIRES[name]

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Call:
        if endpoint is _OTHER:
            return other_call(body, headers, query)
        data = parse_json_object(body, headers)
        if "model" not in data:
            raise bad_request(
                "you must provide a model parameter", param="model", code="missing_model"
            )
        try:
            _SCHEMAS[endpoint.operation].model_validate(data)
        except ValidationError as exc:
            raise _invalid(exc) from None
        stream = endpoint.operation is Operation.CHAT and data.get("stream") is True
        wants_usage = stream and (data.get("stream_options") or {}).get("include_usage") is True
        assert endpoint.wire is not None
        return Call(
            endpoint.wire, endpoint.operation, data["model"], data, body, stream, wants_usage
        )

    def to_hub(self, call: Call) -> CanonicalRequest:
        if call.wire == PASSTHROUGH:
            raise GatewayError(
                400,
                f"{call.method} {call.path} is passed through to OpenAI-compatible backends "
                "only, and this route's backend is not one",
                code="unsupported_endpoint",
            )
        return CanonicalRequest(
            call.operation, call.model, call.body, call.stream, call.wants_usage
        )

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        return jsonx.dumps(response.body)

    def stream_encoder(self, ctx: RequestContext) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder()

    def error_body(self, error: GatewayError) -> bytes:
        return jsonx.dumps(error_object(error))

    async def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        models = gateway.exposed_models()
        if endpoint is _MODELS:
            data = {"object": "list", "data": [_model(m) for m in models]}
            return LocalAnswer(200, jsonx.dumps(data))
        model = unquote(_strip_prefix(ctx.path)[len("/models/") :])
        if model not in models:
            raise GatewayError(
                404, f"the model '{model}' does not exist", code="model_not_found", param="model"
            )
        return LocalAnswer(200, jsonx.dumps(_model(model)))


def _stored_completions(method: str, path: str) -> bool:
    """Stored chat completions: list, retrieve, update, delete, and their messages."""
    if path == "/chat/completions":
        return method == "GET"
    return path.startswith("/chat/completions/") and method in ("GET", "POST", "DELETE")


def other_call(body: bytes, headers: Mapping[str, str], query: str) -> Call:
    """Any other endpoint: the body as it is; JSON is read for `model` and `stream`."""
    content_type = headers.get("content-type", "")
    data: dict[str, Any] = {}
    if body and "json" in content_type.lower():
        data = parse_json_object(body, headers)
    model = data.get("model")
    stream = data.get("stream") is True
    return Call(
        PASSTHROUGH,
        Operation.OTHER,
        model if isinstance(model, str) else "",
        data,
        body,
        stream,
        content_type=content_type,
        query=query,
    )


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "modelway"}


def parse_json_object(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object in a request body, or a 4xx that says what is wrong with it."""
    content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        shown = "".join(c for c in content_type[:80] if c.isprintable() and c.isascii())
        raise GatewayError(
            415,
            f"unsupported content type '{shown}': send the body as JSON with "
            "'Content-Type: application/json'",
            code="unsupported_media_type",
        )
    if not body.strip():
        raise bad_request("the request body is empty: expected a JSON object", code="empty_body")
    try:
        data = jsonx.loads_request(body)
    except jsonx.JSONDecodeError as exc:
        raise bad_request(
            f"the request body is not valid JSON ({exc})", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise bad_request(
            f"the request body must be a JSON object, not {type(data).__name__}",
            code="invalid_body",
        )
    return data


def _invalid(exc: ValidationError) -> GatewayError:
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    path = format_path([p for p in first["loc"] if not _is_type_tag(p)])
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return bad_request(
        f"invalid value for '{path}': {first['msg']}{more}", param=path, code="invalid_value"
    )


_TYPE_TAG = re.compile(r"^(str|int|float|bool|dict|list|tuple)(\[.*\])?$|^function-")


def _is_type_tag(part: Any) -> bool:
    """pydantic adds a union member's type to error locations; they are not fields."""
    return isinstance(part, str) and bool(_TYPE_TAG.match(part))


@hookimpl
def modelway_ingress_apis() -> list[IngressAPI]:
    return [OpenAIAPI()]
