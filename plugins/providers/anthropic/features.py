"""The hub's optional features as Anthropic Messages fields (`modelway.hubext`): `top_k`,
`service_tier` (OpenAI's values: `auto` and `priority` are Anthropic's `auto`, `default` its
`standard_only`), and Anthropic's own fields and tools, the fields the gateway does not know
and the blocks the chat shape cannot say, as the client sent them. Pure."""

from __future__ import annotations

from typing import Any

from modelway.errors import bad_request
from modelway.hubext import (
    ANTHROPIC_BLOCKS,
    ANTHROPIC_FIELDS,
    ANTHROPIC_TOOLS,
    ANTHROPIC_UNKNOWN,
    SERVICE_TIER,
    TOP_K,
)

Json = dict[str, Any]

FEATURES = frozenset(
    {TOP_K, SERVICE_TIER, ANTHROPIC_TOOLS, ANTHROPIC_UNKNOWN, ANTHROPIC_BLOCKS, *ANTHROPIC_FIELDS}
)
"""What an Anthropic backend takes of `modelway.hubfit.FEATURES`: all of it."""
_TIERS = {"auto": "auto", "priority": "auto", "default": "standard_only"}


def anthropic_features(body: Json, *, sampling: bool = True) -> Json:
    """`top_k` (with the other sampling fields), `service_tier`, `context_management`,
    `mcp_servers`, `container`, `cache_control`; the tools are `with_own_tools`', the fields
    the gateway does not know `with_unknown`'s."""
    out: Json = {name: body[name] for name in ANTHROPIC_FIELDS if body.get(name) is not None}
    if sampling and body.get(TOP_K) is not None:
        out[TOP_K] = body[TOP_K]
    tier = body.get(SERVICE_TIER)
    if tier is not None:
        out[SERVICE_TIER] = _tier(tier)
    return out


def _tier(tier: Any) -> str:
    if isinstance(tier, str) and tier in _TIERS:
        return _TIERS[tier]
    if isinstance(tier, str) and tier in _TIERS.values():
        return tier
    raise bad_request(
        f"service_tier {tier!r} cannot be sent to an Anthropic backend: use auto, priority "
        "(Anthropic's auto) or default (Anthropic's standard_only)",
        param=SERVICE_TIER,
        code="unsupported_feature",
    )


def with_own_tools(out: Json, body: Json) -> None:
    """Anthropic's own tools (server and built-in ones) after the translated function tools."""
    own = body.get(ANTHROPIC_TOOLS)
    if isinstance(own, list) and own:
        out["tools"] = [*(out.get("tools") or []), *own]


def with_unknown(out: Json, body: Json) -> None:
    """The client's fields the gateway does not know, as sent (never over a translated one)."""
    unknown = body.get(ANTHROPIC_UNKNOWN)
    for name, value in unknown.items() if isinstance(unknown, dict) else ():
        out.setdefault(name, value)
