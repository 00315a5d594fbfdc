"""Anthropic's endpoints other than Messages, for Anthropic clients: which requests are theirs,
the models list in Anthropic's shape, and every other `/v1/*` passed through.

A request is an Anthropic client's when it carries `anthropic-version` (every Anthropic SDK
and Claude Code send it), an `x-api-key` without `authorization`, or is on a path only
Anthropic has (`/v1/messages/...`, such as batches). Such a request is matched by this API
before the OpenAI one: `GET /v1/models` is answered in Anthropic's shape, and `/v1/files`,
`/v1/messages/batches`, ... pass through with Anthropic's feature headers; the gateway's own
errors on them (no route, gateway keys, `max_body_bytes`) are in Anthropic's error shape.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from modelway import jsonx
from modelway.canonical import Operation
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.ingress import Endpoint, LocalAnswer
from modelway.wire import PASSTHROUGH

API = "anthropic"
MODELS_PATH = "/v1/models"
MODELS = Endpoint(API, Operation.MODELS, "models.list", local=True)
MODEL = Endpoint(API, Operation.MODELS, "models.retrieve", local=True)
OTHER = Endpoint(API, Operation.OTHER, "other", wire=PASSTHROUGH)
_ONLY_ANTHROPIC = ("/v1/messages/", "/v1/complete")
_CREATED = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recognizes(path: str, headers: Mapping[str, str]) -> bool:
    """Whether the request is an Anthropic client's (headers, or a path only Anthropic has)."""
    if "anthropic-version" in headers:
        return True
    if "x-api-key" in headers and "authorization" not in headers:
        return True
    return path.startswith(_ONLY_ANTHROPIC)


def models_endpoint(method: str, path: str) -> Endpoint | None:
    """`GET /v1/models` and `GET /v1/models/{id}` (asked first only for Anthropic clients)."""
    if method != "GET":
        return None
    if path == MODELS_PATH:
        return MODELS
    rest = path.removeprefix(MODELS_PATH + "/")
    return MODEL if rest != path and rest and "/" not in rest and ":" not in rest else None


def other_endpoint(path: str) -> Endpoint | None:
    """Any other `/v1/*` path (not a Gemini `model:method`), passed through."""
    if not path.startswith("/v1/") or ":" in path.rsplit("/", 1)[-1]:
        return None
    return OTHER


def models_answer(endpoint: Endpoint, ctx: RequestContext, models: list[str]) -> LocalAnswer:
    """The exposed models in Anthropic's shape (`ModelInfo`, one page)."""
    if endpoint is MODELS:
        data = [_model(name) for name in models]
        page: dict[str, Any] = {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
        return LocalAnswer(200, jsonx.dumps(page))
    name = unquote(ctx.path.removeprefix(MODELS_PATH + "/"))
    if name not in models:
        raise GatewayError(404, f"model: {name}", "not_found_error", "model_not_found")
    return LocalAnswer(200, jsonx.dumps(_model(name)))


def _model(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": _CREATED}
