"""The OpenAI API as the gateway's client-facing API: chat completions, embeddings, models.

Requests are validated and decoded into the canonical form (OpenAI-shaped already); answers,
streams and errors are encoded in OpenAI's wire shape.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.configload import format_path
from modelway.context import RequestContext
from modelway.errors import GatewayError, bad_request
from modelway.extension import Endpoint, IngressAPI, LocalAnswer
from modelway.plugins.ingress.openai.schema import ChatCompletionRequest, EmbeddingsRequest
from modelway.providerkit import dumps
from modelway.runtime import Gateway

API = "openai"
_CHAT = Endpoint(API, Operation.CHAT, "chat.completions")
_EMBEDDINGS = Endpoint(API, Operation.EMBEDDINGS, "embeddings")
_MODELS = Endpoint(API, Operation.MODELS, "models.list", local=True)
_MODEL = Endpoint(API, Operation.MODELS, "models.retrieve", local=True)

_ROUTES = {
    ("POST", "/chat/completions"): _CHAT,
    ("POST", "/embeddings"): _EMBEDDINGS,
    ("GET", "/models"): _MODELS,
}
_SCHEMAS: dict[Operation, type[BaseModel]] = {
    Operation.CHAT: ChatCompletionRequest,
    Operation.EMBEDDINGS: EmbeddingsRequest,
}
_STARTED = int(time.time())


def _strip_prefix(path: str) -> str:
    return path[3:] if path.startswith("/v1/") else path


class OpenAIStreamEncoder:
    content_type = "text/event-stream"

    def encode(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + dumps(chunk) + b"\n\n"

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, error: GatewayError) -> bytes:
        return b"data: " + dumps(error_object(error)) + b"\n\n"


def error_object(error: GatewayError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


class OpenAIAPI(IngressAPI):
    name = API
    paths = ("/v1/chat/completions", "/v1/embeddings", "/v1/models")

    def match(self, method: str, path: str) -> Endpoint | None:
        path = _strip_prefix(path)
        endpoint = _ROUTES.get((method, path))
        if endpoint is None and method == "GET" and path.startswith("/models/"):
            return _MODEL
        return endpoint

    def claims(self, path: str) -> bool:
        return _strip_prefix(path) in {"/chat/completions", "/embeddings", "/models"}

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> CanonicalRequest:
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
        return CanonicalRequest(endpoint.operation, data["model"], data, stream, wants_usage)

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        return dumps(response.body)

    def stream_encoder(self, ctx: RequestContext) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder()

    def error_body(self, error: GatewayError) -> bytes:
        return dumps(error_object(error))

    def local_answer(
        self, endpoint: Endpoint, ctx: RequestContext, gateway: Gateway
    ) -> LocalAnswer:
        models = gateway.exposed_models()
        if endpoint is _MODELS:
            return LocalAnswer(200, dumps({"object": "list", "data": [_model(m) for m in models]}))
        model = unquote(_strip_prefix(ctx.path)[len("/models/") :])
        if model not in models:
            raise GatewayError(
                404, f"the model '{model}' does not exist", code="model_not_found", param="model"
            )
        return LocalAnswer(200, dumps(_model(model)))


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "modelway"}


def parse_json_object(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The JSON object in a request body, or a 4xx that says what is wrong with it."""
    content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise GatewayError(
            415,
            f"unsupported content type '{content_type}': send the body as "
            "JSON with 'Content-Type: application/json'",
            code="unsupported_media_type",
        )
    if not body.strip():
        raise bad_request("the request body is empty: expected a JSON object", code="empty_body")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise bad_request("the request body is nested too deeply", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(
            f"the request body is not valid JSON ({exc})", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise bad_request(
            f"the request body must be a JSON object, not {type(data).__name__}",
            code="invalid_body",
        )
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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
