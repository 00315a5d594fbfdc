"""`GET`/`DELETE /v1/responses/{id}`, `GET .../input_items`, `POST .../cancel`.

The gateway answers for the responses it stored itself (from the record: the response, a
replay of its events with `stream=true`, its input items page by page). A response that an
OpenAI backend keeps is asked of that backend, with the gateway's credentials, and its answer
passed back as it is. An id the gateway has no record of for this client is a 404 (another
key's id too, so ids tell nothing). Background responses are not run, so nothing can be
cancelled: a stored response's cancel is a 400 that says so.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote

from modelway import jsonx
from modelway.canonical import Operation
from modelway.context import RequestContext
from modelway.errors import bad_request, not_found
from modelway.extension import Transport
from modelway.ingress import LocalAnswer
from modelway.plugins.ingress.responses.call import owner_of
from modelway.plugins.ingress.responses.records import store_for
from modelway.plugins.ingress.responses.replay import replay
from modelway.runtime import Gateway
from modelway.upstream import HttpTransport, UpstreamFailure
from modelway.wire import OPENAI_RESPONSES, Call

Json = dict[str, Any]
PREFIX = "/v1/responses/"


def response_id_of(path: str) -> str:
    return unquote(path[len(PREFIX):].split("/", 1)[0])


async def answer(name: str, ctx: RequestContext, gateway: Gateway) -> LocalAnswer:
    """The answer of one stored-response endpoint (`name` is the endpoint's name)."""
    response_id = response_id_of(ctx.path)
    store = store_for(gateway)
    record = await store.get(response_id, owner_of(ctx))
    if record is None:
        raise not_found(f"No response found with id '{response_id}'.", code="response_not_found")
    if record.get("kept"):
        result = await _ask_backend(ctx, gateway, record)
        if name == "responses.delete" and result.status < 300:
            await store.delete(response_id)
        return result
    query = parse_qs(ctx.query)
    if name == "responses.retrieve":
        return _retrieve(record["response"], query)
    if name == "responses.delete":
        await store.delete(response_id)
        return _json({"id": response_id, "object": "response", "deleted": True})
    if name == "responses.input_items.list":
        return _json(input_page(record.get("input", []), query))
    raise bad_request(
        "only background responses can be cancelled, and this gateway does not run "
        "background responses",
        param="response_id",
        code="unsupported_operation",
    )


def _json(data: Any, status: int = 200) -> LocalAnswer:
    return LocalAnswer(status, jsonx.dumps(data))


def _retrieve(response: Json, query: dict[str, list[str]]) -> LocalAnswer:
    if _last(query, "stream") != "true":
        return _json(response)
    after = _int(query, "starting_after", None)
    return LocalAnswer(200, replay(response, after), "text/event-stream")


def input_page(items: list[Json], query: dict[str, list[str]]) -> Json:
    """One page of input items: `order` (desc by default), `after`, `limit` (1 to 100)."""
    order = _last(query, "order") or "desc"
    if order not in ("asc", "desc"):
        raise bad_request("order must be 'asc' or 'desc'", param="order", code="invalid_value")
    limit = _int(query, "limit", 20)
    if limit is None or not 1 <= limit <= 100:
        raise bad_request("limit must be between 1 and 100", param="limit", code="invalid_value")
    ordered = items if order == "asc" else list(reversed(items))
    start = 0
    after = _last(query, "after")
    if after:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise bad_request(f"no input item with id '{after}'", param="after",
                              code="invalid_value")
        start = ids.index(after) + 1
    page = ordered[start : start + limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": start + limit < len(ordered),
    }


def _last(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int(query: dict[str, list[str]], name: str, default: int | None) -> int | None:
    value = _last(query, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name} must be an integer", param=name, code="invalid_type") from None


async def _ask_backend(ctx: RequestContext, gateway: Gateway, record: Json) -> LocalAnswer:
    """The same request, to the backend that keeps the response (over a connection of its
    own: these requests are rare, and the gateway's pool belongs to the request path)."""
    backend = gateway.backends.get(str(record.get("backend")))
    if backend is None:
        raise not_found(
            f"the backend that keeps response '{response_id_of(ctx.path)}' is no longer "
            "configured",
            code="response_not_found",
        )
    call = Call(OPENAI_RESPONSES, Operation.OTHER, "", {}, b"", method=ctx.method,
                path=ctx.path, query=ctx.query)
    model = record.get("model") if isinstance(record.get("model"), str) else ""
    request = backend.provider.build_native(ctx, call, model or "")
    limits = gateway.config.gateway
    own = HttpTransport(limits.timeouts.connect, limits.timeouts.idle)
    sender: Transport = backend.provider.transport or own
    try:
        response = await sender.send(request, stream=False)
        body = await response.read()
        response.release()
    except UpstreamFailure as exc:
        raise exc.as_error(backend.name) from None
    finally:
        await own.close()
    content_type = response.headers.get("content-type", "application/json")
    if response.status >= 400 and not _is_error(body):
        raise backend.provider.parse_error(response.status, response.headers, body)
    ctx.annotations["responses_backend"] = backend.name
    return LocalAnswer(response.status, body, content_type)


def _is_error(body: bytes) -> bool:
    try:
        data = jsonx.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and "error" in data
