"""The hub's optional features (`hubext`: `top_k`, `service_tier`, Anthropic's own fields and
tools) fitted to one backend before its provider encodes the request.

A provider names the features it sends on (`Provider.hub_features`). Each other feature in the
request is dropped where that is harmless, and noted (the access log's `extra.not_sent`, the
answer header `x-modelway-not-sent`), or refused with a 400 that names the feature and the
backend, in the client's API shape:

- `context_management` (Anthropic's server-side clearing of old tool results and thinking) is
  dropped: the backend reads the whole conversation, as it would without the optimisation.
- `service_tier` `auto` or `default` (Anthropic's `auto` and `standard_only`) is dropped: a
  backend without tiers serves its standard one. Any other tier is a 400.
- `cache_control` (Anthropic's top-level cache marker) is dropped: the backend caches by
  itself or not at all, and the answer is the same.
- `top_k`, `anthropic_tools` (server tools such as `web_search_20250305`, built-in ones such
  as `bash_20250124`), `mcp_servers` and `container`: a 400.
- `anthropic_unknown` (an Anthropic client's top-level fields the gateway does not know) and
  `anthropic_blocks` (content blocks the chat shape cannot say, such as `server_tool_use` or
  `web_search_tool_result` in the history): a 400 naming the field or block type, since only
  a backend that speaks Anthropic's Messages API knows what they mean. Null fields ask for
  nothing and are dropped.
"""

from __future__ import annotations

from typing import Any

from modelway.canonical import CanonicalRequest
from modelway.context import Attempt, RequestContext
from modelway.errors import GatewayError, bad_request
from modelway.hubext import (
    ANTHROPIC_BLOCKS,
    ANTHROPIC_FIELDS,
    ANTHROPIC_TOOLS,
    ANTHROPIC_UNKNOWN,
    CACHE_CONTROL,
    CONTEXT_MANAGEMENT,
    SERVICE_TIER,
    TOP_K,
    anthropic_block_types,
)

FEATURES = frozenset(
    {TOP_K, SERVICE_TIER, ANTHROPIC_TOOLS, ANTHROPIC_UNKNOWN, ANTHROPIC_BLOCKS, *ANTHROPIC_FIELDS}
)
"""Every hub feature a backend may not take."""
_ORDER = sorted(FEATURES)
NOT_SENT_HEADER = "x-modelway-not-sent"
UNSUPPORTED = "unsupported_feature"
"""The code of a refusal: this backend cannot take the feature (a later attempt may)."""
STANDARD_TIERS = frozenset({"auto", "default"})


def fit(ctx: RequestContext, attempt: Attempt, request: CanonicalRequest) -> CanonicalRequest:
    """`request` as `attempt`'s backend takes it: features it does not take dropped (noted on
    `ctx`), or a 400 for the first one that cannot be dropped."""
    ctx.response_headers.pop(NOT_SENT_HEADER, None)
    ctx.annotations.pop("not_sent", None)
    present = _present(request.body)
    if not present:
        return request
    taken = attempt.backend.provider.hub_features(request.model)
    missing = [name for name in present if name not in taken]
    for name in missing:
        if not _droppable(name, present[name]):
            raise refusal(name, present[name], attempt, request.model)
    if not missing:
        return request
    _note(ctx, _field_names(missing, present), attempt)
    body = {k: v for k, v in request.body.items() if k not in missing}
    return CanonicalRequest(
        request.operation, request.model, body, request.stream, request.client_wants_usage
    )


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """The features in a hub body, by name (sorted), with their values; the blocks' value is
    the list of their types."""
    present = {name: body[name] for name in _ORDER if name in body}
    blocks = anthropic_block_types(body.get("messages"))
    if blocks:
        present[ANTHROPIC_BLOCKS] = blocks
    return present


def _droppable(name: str, value: Any) -> bool:
    if value is None or name in (CONTEXT_MANAGEMENT, CACHE_CONTROL):  # a null asks for nothing
        return True
    if name == ANTHROPIC_UNKNOWN:
        return isinstance(value, dict) and all(v is None for v in value.values())
    return name == SERVICE_TIER and value in STANDARD_TIERS


def _field_names(names: list[str], present: dict[str, Any]) -> list[str]:
    """The client's own names: an unknown field's name, not the hub's `anthropic_unknown`."""
    unknown = present.get(ANTHROPIC_UNKNOWN) if ANTHROPIC_UNKNOWN in names else None
    known = [name for name in names if name != ANTHROPIC_UNKNOWN]
    return known + list(unknown) if isinstance(unknown, dict) else known


def _note(ctx: RequestContext, dropped: list[str], attempt: Attempt) -> None:
    reason = f"backend '{attempt.backend.name}' does not take them; dropping them is harmless"
    ctx.annotations["not_sent"] = {"fields": dropped, "reason": reason}
    ctx.response_headers[NOT_SENT_HEADER] = ", ".join(dropped)


def backend_label(attempt: Attempt, model: str) -> str:
    """`backend 'gpt' (openai, model gpt-4o-mini)`."""
    backend = attempt.backend
    return f"backend '{backend.name}' ({backend.provider_name}, model {model})"


def refusal(name: str, value: Any, attempt: Attempt, model: str) -> GatewayError:
    """The 400 for a feature the backend cannot take."""
    where = backend_label(attempt, model)
    if name == ANTHROPIC_TOOLS:
        tool = value[0] if isinstance(value, list) and value else {}
        tool = tool if isinstance(tool, dict) else {}
        return bad_request(
            f"the Anthropic tool '{tool.get('name')}' ({tool.get('type')}) cannot be sent to "
            f"{where}: Anthropic's server and built-in tools run on Anthropic backends only",
            param="tools",
            code=UNSUPPORTED,
        )
    if name == SERVICE_TIER:
        return bad_request(
            f"service_tier '{value}' cannot be sent to {where}, which has no service tiers "
            "(auto and default are left out)",
            param=name,
            code=UNSUPPORTED,
        )
    if name in (ANTHROPIC_UNKNOWN, ANTHROPIC_BLOCKS):
        return _anthropic_only(name, value, where)
    if name == TOP_K:
        return bad_request(
            f"top_k cannot be sent to {where}, which does not take it; send the request "
            "without top_k",
            param=name,
            code=UNSUPPORTED,
        )
    return bad_request(
        f"{name} cannot be sent to {where}: it is a feature of Anthropic backends only",
        param=name,
        code=UNSUPPORTED,
    )


def _anthropic_only(name: str, value: Any, where: str) -> GatewayError:
    """The 400 for fields or blocks only a backend of Anthropic's Messages API knows."""
    if name == ANTHROPIC_BLOCKS:
        kinds = ", ".join(f"'{kind}'" for kind in value)
        noun = "blocks" if len(value) > 1 else "block"
        return bad_request(
            f"the Anthropic content {noun} {kinds} in the messages cannot be sent to {where}: "
            "only backends of Anthropic's Messages API take such blocks",
            param="messages",
            code=UNSUPPORTED,
        )
    fields = [field for field, sent in value.items() if sent is not None]
    names = ", ".join(f"'{field}'" for field in fields)
    noun, it = ("fields", "them") if len(fields) > 1 else ("field", "it")
    return bad_request(
        f"the {noun} {names} cannot be sent to {where}: the gateway does not translate {it}, "
        f"and only backends of Anthropic's Messages API take {it} as sent",
        param=fields[0],
        code=UNSUPPORTED,
    )
