"""A Google client's models list and model in Google's shape, answered by the gateway itself.

`GET /{v1,v1beta,v1alpha}/models` lists the models the gateway's routes serve by exact name
(`Gateway.exposed_models`, as the OpenAI and Anthropic lists do) as Google's `Model`s, a page
at a time (`pageSize`, default 50, at most 1000; `pageToken` from the last page's
`nextPageToken`); `GET .../models/{model}` is one of them, or Google's 404. `/v1/models` is
only asked of this API for a request it recognizes as a Google client's (`x-goog-api-key`);
every other client gets OpenAI's list there.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote

from modelway import jsonx
from modelway.canonical import Operation
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.ingress import Endpoint, LocalAnswer

API = "gemini"
MODELS = Endpoint(API, Operation.MODELS, "models.list", local=True)
MODEL = Endpoint(API, Operation.MODELS, "models.get", local=True)
METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
"""What every model the gateway exposes serves, through the gateway."""
DEFAULT_PAGE = 50
MAX_PAGE = 1000
_PATH = re.compile(r"/(?:v1|v1beta|v1alpha)/models(?:/(?P<model>[^/:]+))?")


def models_endpoint(method: str, path: str) -> Endpoint | None:
    """The list or one model, for a GET (HEAD) on Google's models paths."""
    found = _PATH.fullmatch(path) if method in ("GET", "HEAD") else None
    if found is None:
        return None
    return MODEL if found["model"] else MODELS


def models_answer(endpoint: Endpoint, ctx: RequestContext, models: list[str]) -> LocalAnswer:
    """The answer to a `models_endpoint` request, from the gateway's exposed models."""
    if endpoint is MODELS:
        return LocalAnswer(200, jsonx.dumps(_page(models, parse_qs(ctx.query))))
    found = _PATH.fullmatch(ctx.path)
    name = unquote(found["model"] if found else "").removeprefix("models/")
    if name not in models:
        raise GatewayError(404, f"models/{name} is not found", code="NOT_FOUND")
    return LocalAnswer(200, jsonx.dumps(_model(name)))


def _page(models: list[str], query: dict[str, list[str]]) -> dict[str, Any]:
    size = _number(query, "pageSize", DEFAULT_PAGE) or DEFAULT_PAGE
    start = _number(query, "pageToken", 0)
    end = start + min(size, MAX_PAGE)
    page: dict[str, Any] = {"models": [_model(name) for name in models[start:end]]}
    if end < len(models):
        page["nextPageToken"] = str(end)
    return page


def _number(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name) or [""]
    if not values[-1]:
        return default
    if not values[-1].isdigit():
        raise GatewayError(400, f"{name} {values[-1]!r} is not valid", code="INVALID_ARGUMENT")
    return int(values[-1])


def _model(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": "modelway",
        "displayName": name,
        "description": f"{name}, served by the modelway gateway",
        "supportedGenerationMethods": METHODS,
    }
