"""The hub's extension fields: what the OpenAI chat shape cannot say, carried between APIs.

The hub is the OpenAI chat-completions body. Reasoning, its signatures and cache writes have
no standard field there, so every translator uses these names (LiteLLM's and the
OpenAI-compatible servers' spellings where they have one):

- request `thinking`: Anthropic's shape, `{"type": "enabled", "budget_tokens"}`,
  `{"type": "adaptive"}` or `{"type": "disabled"}`; beside it the standard
  `reasoning_effort` (`none`/`minimal`/`low`/`medium`/`high`/`xhigh`).
- message (request and answer) `reasoning_content`: the reasoning text (the de-facto field of
  OpenAI-compatible servers: DeepSeek, vLLM, SGLang); `thinking_blocks`: the signed blocks,
  `{"type": "thinking", "thinking", "signature"}` or `{"type": "redacted_thinking", "data"}`.
  A Gemini thought signature is a thinking block whose `signature` starts with `gemini:`;
  one that belongs to a function call (which an Anthropic `tool_use` cannot carry) is
  `gemini:call:<n>:<signature>`, n the tool call's index in the message (the call itself
  carries it too, as `extra_content.google.thought_signature`).
- stream delta `reasoning_content`, `reasoning_signature` (closes the thinking block before
  it), `redacted_reasoning` (a redacted block's data).
- choice `stop_sequence` (the matched stop sequence) and `stop_reason` (a provider's own stop
  reason the finish reason cannot say: `pause_turn`, `refusal`).
- usage `cache_creation_input_tokens` (cache writes, part of `prompt_tokens`).
- request `top_k` (vLLM's spelling; Anthropic's `top_k`, Gemini's `topK`), `service_tier`
  (OpenAI's values; Anthropic's `standard_only` is `default`), and Anthropic's own, as sent:
  `context_management`, `mcp_servers`, `container`, and `anthropic_tools` (its server and
  built-in tools, `web_search_20250305`, `bash_20250124` ...). A backend that does not take
  one gets a 400 or has it dropped (`modelway.hubfit`).
- request `cache_control` (Anthropic's top-level, automatic cache marker) and
  `anthropic_unknown`: an Anthropic client's top-level fields the gateway does not know,
  `{name: value}` as sent (Anthropic backends take them; elsewhere a 400).
- content part `{"type": "anthropic_block", "anthropic_block": <block>}`: an Anthropic
  content block the chat shape cannot say (`server_tool_use`, `web_search_tool_result`,
  `mcp_tool_use`, `container_upload`, a future type ...), as sent and in its place; the
  feature `anthropic_blocks` (`anthropic_block_types`).

`HUB_ONLY_REQUEST` and `HUB_ONLY_MESSAGE` are the names no OpenAI backend knows: the OpenAI
provider removes them before sending (`strip_for_openai`).
"""

from __future__ import annotations

from typing import Any

THINKING = "thinking"
REASONING_CONTENT = "reasoning_content"
THINKING_BLOCKS = "thinking_blocks"
REASONING_SIGNATURE = "reasoning_signature"
REDACTED_REASONING = "redacted_reasoning"
STOP_SEQUENCE = "stop_sequence"
STOP_REASON = "stop_reason"
CACHE_WRITE = "cache_creation_input_tokens"
GEMINI_SIGNATURE = "gemini:"
"""Prefix of a Gemini `thoughtSignature` carried as a thinking block's signature."""
GEMINI_CALL_SIGNATURE = "gemini:call:"
"""Prefix of a Gemini function call's `thoughtSignature` (`gemini:call:<n>:<signature>`)."""

TOP_K = "top_k"
SERVICE_TIER = "service_tier"
CONTEXT_MANAGEMENT = "context_management"
ANTHROPIC_TOOLS = "anthropic_tools"
CACHE_CONTROL = "cache_control"
ANTHROPIC_FIELDS = ("context_management", "mcp_servers", "container", CACHE_CONTROL)
"""Anthropic request fields the hub carries as they are."""
ANTHROPIC_UNKNOWN = "anthropic_unknown"
ANTHROPIC_BLOCK = "anthropic_block"
ANTHROPIC_BLOCKS = "anthropic_blocks"

HUB_ONLY_REQUEST = frozenset({THINKING})
HUB_ONLY_MESSAGE = frozenset({THINKING_BLOCKS, "reasoning_items"})

EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000}
"""`reasoning_effort` as a thinking budget (tokens), for backends that take a budget."""
MIN_BUDGET = 1024
"""Anthropic's smallest `budget_tokens`."""


def budget_effort(budget: int) -> str:
    """The `reasoning_effort` nearest a thinking budget (rounded up)."""
    for effort, tokens in EFFORT_BUDGETS.items():
        if budget <= tokens and effort != "minimal":
            return effort
    return "xhigh"


def thinking_from_effort(effort: Any, max_tokens: int | None = None) -> dict[str, Any] | None:
    """A hub `thinking` for a `reasoning_effort`; None when it asks for none that fits."""
    if effort == "none":
        return {"type": "disabled"}
    budget = EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        return None
    if max_tokens is not None:
        budget = min(budget, max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= MIN_BUDGET else None


def effort_from_thinking(thinking: Any) -> str | None:
    """The `reasoning_effort` for a hub `thinking` (adaptive thinking is `medium`)."""
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "disabled":
        return "none"
    if kind == "adaptive":
        return "medium"
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and isinstance(budget, int) and not isinstance(budget, bool):
        return budget_effort(budget)
    return None


def gemini_call_signature(number: int, signature: str) -> str:
    """The thinking-block signature of tool call `number`'s Gemini thought signature."""
    return f"{GEMINI_CALL_SIGNATURE}{number}:{signature}"


def gemini_signature(signature: Any) -> tuple[int | None, str] | None:
    """A thinking block's Gemini signature: (the tool call it belongs to, or None for a
    text or thought part's; Gemini's own signature). None when it is not Gemini's."""
    if not isinstance(signature, str) or not signature.startswith(GEMINI_SIGNATURE):
        return None
    if not signature.startswith(GEMINI_CALL_SIGNATURE):
        own = signature.removeprefix(GEMINI_SIGNATURE)
        return (None, own) if own else None
    number, _, own = signature.removeprefix(GEMINI_CALL_SIGNATURE).partition(":")
    return (int(number), own) if number.isdigit() and own else None


def reasoning_text(blocks: Any) -> str:
    """The thinking text of hub thinking blocks, joined."""
    if not isinstance(blocks, list):
        return ""
    return "".join(
        b["thinking"] for b in blocks if isinstance(b, dict) and isinstance(b.get("thinking"), str)
    )


def strip_for_openai(body: dict[str, Any], *, reasoning: bool = True) -> dict[str, Any]:
    """The body without hub-only fields (a copy when there were any): `thinking` becomes
    `reasoning_effort` when that is not set; messages lose `thinking_blocks` (their text
    stays as `reasoning_content`, which OpenAI-compatible servers read back, unless
    `reasoning` is False: OpenAI's own API does not take it)."""
    dropped = HUB_ONLY_MESSAGE if reasoning else HUB_ONLY_MESSAGE | {REASONING_CONTENT}
    out = body
    if any(name in body for name in HUB_ONLY_REQUEST):
        out = {k: v for k, v in body.items() if k not in HUB_ONLY_REQUEST}
        effort = effort_from_thinking(body.get(THINKING))
        if effort not in (None, "none") and "reasoning_effort" not in out:
            out["reasoning_effort"] = effort
    messages = body.get("messages")
    if isinstance(messages, list) and any(_has(m, dropped) for m in messages):
        out = out if out is not body else dict(body)
        out["messages"] = [
            _openai_message(m, dropped, reasoning) if _has(m, dropped) else m for m in messages
        ]
    return out


def _has(message: Any, names: frozenset[str]) -> bool:
    return isinstance(message, dict) and not names.isdisjoint(message)


def _openai_message(
    message: dict[str, Any], dropped: frozenset[str], reasoning: bool
) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k not in dropped}
    text = reasoning_text(message.get(THINKING_BLOCKS))
    if reasoning and REASONING_CONTENT not in out and text:
        out[REASONING_CONTENT] = text
    return out


def anthropic_block_types(messages: Any) -> list[str]:
    """The types of the Anthropic blocks carried in hub messages (`anthropic_block` parts of
    a message's content, a tool message's included), in order, each once."""
    found: dict[str, None] = {}
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == ANTHROPIC_BLOCK:
                block = part.get(ANTHROPIC_BLOCK)
                kind = block.get("type") if isinstance(block, dict) else None
                found[kind if isinstance(kind, str) else "unknown"] = None
    return list(found)
