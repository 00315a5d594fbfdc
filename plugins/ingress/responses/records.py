"""What the gateway remembers of each response, and what a new request finds again.

`remember_made` keeps a response the gateway itself made (a translated backend answered):
its input items and the response. `remember_kept` keeps only a pointer when an OpenAI
backend answered on the same-API lane and keeps the response itself. `prepare_call` reads
them back for a new request: the stored conversation its `previous_response_id` continues,
or the backend that holds it (the request then goes there), and the stored items its
`item_reference`s name. Nothing is kept for `store: false`.
"""

from __future__ import annotations

from typing import Any

from modelway.context import RequestContext
from modelway.errors import GatewayError, bad_request
from modelway.plugins.ingress.responses.call import (
    ResponsesCall,
    owner_of,
    response_of_item,
    responses_call,
)
from modelway.plugins.ingress.responses.request import input_items
from modelway.plugins.ingress.responses.store import ResponseStore
from modelway.runtime import Gateway
from modelway.wire import OPENAI_RESPONSES

Json = dict[str, Any]
VERSION = 1


def store_for(gateway: Gateway) -> ResponseStore:
    return gateway.services.setdefault(ResponseStore, lambda: ResponseStore(gateway.services))


def _base(ctx: RequestContext, call: ResponsesCall, kept: bool) -> Json:
    backend = ctx.served_by.backend.name if ctx.served_by is not None else None
    return {"v": VERSION, "owner": call.owner, "kept": kept, "backend": backend,
            "model": ctx.upstream_model}


def remember_kept(ctx: RequestContext, response_id: str) -> None:
    """An OpenAI backend answered on the same-API lane and keeps the response."""
    call = ctx.call
    if not isinstance(call, ResponsesCall) or not call.store or ctx.gateway is None:
        return
    store_for(ctx.gateway).put(response_id, _base(ctx, call, kept=True))


def remember_made(ctx: RequestContext, response: Json) -> None:
    """The gateway made `response` (a translated answer): keep it with its input."""
    call = ctx.call
    if not isinstance(call, ResponsesCall) or not call.store or ctx.gateway is None:
        return
    if response.get("status") == "failed":
        return
    record = _base(ctx, call, kept=False)
    record.update(
        previous=call.body.get("previous_response_id") if call.continued else None,
        input=own_input(call),
        response=response,
    )
    store_for(ctx.gateway).put(response["id"], record)


def own_input(call: ResponsesCall) -> list[Json]:
    """The request's input as listed items, without the items a policy added."""
    raw = call.body.get("input")
    if isinstance(raw, list):
        raw = [item for item in raw if not any(item is added for added in call.added)]
    try:
        return input_items({**call.body, "input": raw}, call.items_by_id)
    except GatewayError:  # built-in items a translated lane refused before: keep as sent
        return [item for item in raw or () if isinstance(item, dict)]


# ------------------------------------------------------------------------ a new request


def not_found(response_id: str) -> GatewayError:
    return bad_request(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


async def prepare_call(ctx: RequestContext) -> None:
    """Resolve what the stored responses tell about a create request."""
    call = responses_call(ctx)
    assert ctx.gateway is not None
    call.owner = owner_of(ctx)
    store = store_for(ctx.gateway)
    previous = call.body.get("previous_response_id")
    if isinstance(previous, str):
        record = await store.get(previous, call.owner)
        if record is None:
            raise not_found(previous)
        if record.get("kept"):
            call.pinned = _holder(ctx.gateway, record, previous)
        else:
            call.history = await store.conversation(record, call.owner)
            call.continued = True
    call.items_by_id = await _referenced(store, call)


def _holder(gateway: Gateway, record: Json, response_id: str) -> tuple[str, str | None]:
    """The backend that keeps a response; a 400 when it can no longer be asked."""
    name, model = record.get("backend"), record.get("model")
    backend = gateway.backends.get(name) if isinstance(name, str) else None
    model = model if isinstance(model, str) else None
    if backend is None or OPENAI_RESPONSES not in backend.provider.native_wires(model or ""):
        raise bad_request(
            f"Previous response with id '{response_id}' is kept by backend '{name}', which "
            "this gateway no longer serves the Responses API with",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return backend.name, model


async def _referenced(store: ResponseStore, call: ResponsesCall) -> dict[str, Json]:
    """The stored items that the input's `item_reference`s name (by the id of an output
    item the gateway made, which names its response)."""
    raw = call.body.get("input")
    items = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
    references = [item for item in items if item.get("type") == "item_reference"]
    known = {item.get("id") for item in [*call.history, *items] if item not in references}
    wanted = [item["id"] for item in references if item.get("id") not in known]
    found: dict[str, Json] = {}
    for item_id in wanted:
        response_id = response_of_item(str(item_id))
        record = await store.get(response_id, call.owner) if response_id else None
        for item in (record or {}).get("response", {}).get("output", []):
            if isinstance(item, dict) and item.get("id") == item_id:
                found[item_id] = item
    return found
