"""A Responses create request as the gateway carries it, and what the same-API lane sends.

`ResponsesCall` is the client's body (a `Call` of wire `openai.responses`) plus what the
gateway learns for it before it is sent: the id its answer will have when the gateway makes
it, the conversation its `previous_response_id` stands for when the gateway stored it, the
backend that keeps that conversation itself when an OpenAI backend does, and its owner.
`native_changes` is what the same-API lane changes in the body: a conversation the gateway
stored goes inline (the backend never saw it) and the gateway's own reasoning items, which
only the backend that made them can read, are left out.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelway.canonical import Operation
from modelway.context import RequestContext
from modelway.plugins.ingress.openai import parse_json_object
from modelway.plugins.ingress.responses import mw1
from modelway.plugins.ingress.responses.request import BUILTIN_ITEM_TYPES as BUILTINS
from modelway.plugins.ingress.responses.request import validate
from modelway.wire import OPENAI_RESPONSES, Call

Json = dict[str, Any]


@dataclass(slots=True, eq=False)
class ResponsesCall(Call):
    """A `POST /v1/responses` call."""

    response_id: str = ""
    """The id of the answer when the gateway makes it (translated lanes)."""
    created_at: int = 0
    owner: str | None = None
    """Whose response this is: a hash of the client's key (None without a key)."""
    history: list[Json] = field(default_factory=list)
    """The items of the stored conversation `previous_response_id` continues, in order."""
    continued: bool = False
    """`previous_response_id` names a response the gateway stored itself."""
    pinned: tuple[str, str | None] | None = None
    """(backend, model) that keeps the previous response itself: the call goes there."""
    items_by_id: dict[str, Json] = field(default_factory=dict)
    """Stored items that `item_reference`s of the input name."""
    added: list[Json] = field(default_factory=list)
    """Input items a policy added (enrichment): not stored as the client's own input."""

    @property
    def store(self) -> bool:
        return self.body.get("store") is not False


def decode_create(body: bytes, headers: Mapping[str, str]) -> ResponsesCall:
    """The call for a create body; a 4xx in OpenAI's shape for what no backend could take."""
    data = parse_json_object(body, headers)
    check_create(data)
    stream = data.get("stream") is True
    # A Responses stream always ends with its usage, so a translated stream keeps it.
    return ResponsesCall(
        OPENAI_RESPONSES,
        Operation.CHAT,
        data["model"],
        data,
        body,
        stream,
        True,
        response_id=new_response_id(),
        created_at=int(time.time()),
    )


def check_create(data: Json) -> None:
    """Types, item kinds and tool kinds, checked for every lane. Built-in tools and their
    items are fine here (an OpenAI backend runs them); a translated lane refuses them."""
    items = data.get("input")
    if isinstance(items, list):
        kept = [i for i in items if not (isinstance(i, dict) and _kind(i) in BUILTINS)]
        data = {**data, "input": kept}
    validate(data, "drop")


def _kind(item: Json) -> str | None:
    """An item's `type` when it is a string (a client may send any JSON there)."""
    kind = item.get("type")
    return kind if isinstance(kind, str) else None


def new_response_id() -> str:
    """`resp_` and 32 hex digits: item ids derive from it (`msg_<hex>_<index>`)."""
    return "resp_" + uuid.uuid4().hex


def response_of_item(item_id: str) -> str | None:
    """The response an output item of the gateway's own belongs to, from its id."""
    head, _, index = item_id.rpartition("_")
    _, _, digits = head.partition("_")
    if not index.isdigit() or len(digits) != 32:
        return None
    return "resp_" + digits


def owner_of(ctx: RequestContext) -> str | None:
    """A stable, non-reversible name for the client's key."""
    key = ctx.client.api_key
    if not key:
        return None
    return hashlib.sha256(b"modelway-responses\0" + key.encode()).hexdigest()[:32]


def responses_call(ctx: RequestContext) -> ResponsesCall:
    call = ctx.call
    assert isinstance(call, ResponsesCall)
    return call


def is_gateway_reasoning(item: Any) -> bool:
    """A reasoning item whose `encrypted_content` the gateway made (mw1)."""
    if not isinstance(item, dict) or item.get("type") != "reasoning":
        return False
    content = item.get("encrypted_content")
    return isinstance(content, str) and content.startswith(mw1.PREFIX)


def native_changes(call: Call) -> Json:
    """The top-level fields the same-API lane changes in the client's body."""
    if not isinstance(call, ResponsesCall):
        return {}
    raw = call.body.get("input")
    items: list[Any] = (
        list(raw or []) if not isinstance(raw, str) else [{"role": "user", "content": raw}]
    )
    changes: Json = {}
    if call.continued:
        items = [*call.history, *items]
        changes["previous_response_id"] = None
    elif not any(is_gateway_reasoning(item) for item in items):
        return changes
    changes["input"] = [item for item in items if not is_gateway_reasoning(item)]
    return changes
