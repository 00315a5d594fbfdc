"""Gemini reasoning in and out of the hub (`modelway.hubext`), for backends of other APIs.

- `generationConfig.thinkingConfig` -> hub: `thinkingBudget` 0 is `thinking: disabled`, -1
  (dynamic) is `reasoning_effort: medium`, a positive budget is `thinking: enabled` with that
  budget (at least Anthropic's 1024); `thinkingLevel` is `reasoning_effort`; `includeThoughts`
  alone asks for `reasoning_effort: medium`.
- Thought parts of a model turn (`thought: true`) -> the hub message's `reasoning_content`
  and `thinking_blocks`: consecutive thought texts up to a `thoughtSignature` are one signed
  block (a streamed answer comes back as many parts); a text or function part's own
  `thoughtSignature` is a Gemini signature (`gemini:` prefix). A redacted block travels as a
  thought part whose signature starts with `redacted:`.
- Hub answers -> thought parts before the text: each signed block is one part with its
  text and signature, so a client that sends the turn back keeps a tool conversation with
  thinking going. Signed thoughts are sent even without `includeThoughts`, since the
  backend needs them back; the SDKs' `.text` leaves thoughts out. A `gemini:call:` block is
  not a part of its own: its function call carries the signature.
"""

from __future__ import annotations

from typing import Any

from modelway.hubext import (
    GEMINI_CALL_SIGNATURE,
    GEMINI_SIGNATURE,
    MIN_BUDGET,
    REASONING_CONTENT,
    REASONING_SIGNATURE,
    REDACTED_REASONING,
    THINKING,
    THINKING_BLOCKS,
)
from modelway.plugins.ingress.gemini.fields import get

JSON = dict[str, Any]
REDACTED = "redacted:"
"""Prefix of a redacted thinking block's data carried as a thought part's signature."""
_LEVELS = frozenset({"minimal", "low", "medium", "high"})


def hub_reasoning(config: Any) -> JSON:
    """Hub request fields for a `thinkingConfig` (empty when it asks for nothing)."""
    if not isinstance(config, dict):
        return {}
    level = get(config, "thinkingLevel")
    if isinstance(level, str) and level.lower() in _LEVELS:
        return {"reasoning_effort": level.lower()}
    budget = get(config, "thinkingBudget")
    if isinstance(budget, int) and not isinstance(budget, bool):
        if budget == 0:
            return {THINKING: {"type": "disabled"}}
        if budget > 0:
            return {THINKING: {"type": "enabled", "budget_tokens": max(budget, MIN_BUDGET)}}
        return {"reasoning_effort": "medium"}
    if get(config, "includeThoughts") is True:
        return {"reasoning_effort": "medium"}
    return {}


class Thoughts:
    """The reasoning of one model turn, gathered part by part."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.pending: list[str] = []
        self.blocks: list[JSON] = []

    def add(self, part: JSON) -> bool:
        """Take a part's reasoning; True when the part is a thought (nothing else in it)."""
        signature = get(part, "thoughtSignature")
        signed = isinstance(signature, str) and bool(signature)
        if get(part, "thought") is not True:
            if signed and get(part, "functionCall") is None:  # a call keeps its own
                self.blocks.append(_block("", GEMINI_SIGNATURE + signature))
            return False
        text = get(part, "text")
        if isinstance(text, str) and text:
            self.texts.append(text)
            self.pending.append(text)
        if signed:
            if signature.startswith(REDACTED):
                data = signature.removeprefix(REDACTED)
                self.blocks.append({"type": "redacted_thinking", "data": data})
            else:
                self.blocks.append(_block("".join(self.pending), signature))
            self.pending = []
        return True

    def fields(self) -> JSON:
        """The hub message fields (empty when the turn had no reasoning)."""
        out: JSON = {}
        if self.texts:
            out[REASONING_CONTENT] = "".join(self.texts)
        if self.blocks:
            out[THINKING_BLOCKS] = self.blocks
        return out


def _block(thinking: str, signature: str) -> JSON:
    return {"type": "thinking", "thinking": thinking, "signature": signature}


def thought_parts(message: JSON) -> list[JSON]:
    """A hub answer message's reasoning as Gemini thought parts."""
    parts: list[JSON] = []
    for block in message.get(THINKING_BLOCKS) or []:
        part = thought_part(block)
        if part is not None:
            parts.append(part)
    reasoning = message.get(REASONING_CONTENT)
    if not parts and isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    return parts


def thought_part(block: Any) -> JSON | None:
    """One hub thinking block as a thought part (None for what a Gemini client cannot keep)."""
    if not isinstance(block, dict):
        return None
    if block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
        return {"text": "", "thought": True, "thoughtSignature": REDACTED + block["data"]}
    signature = block.get("signature")
    text = block.get("thinking")
    if block.get("type") != "thinking" or not isinstance(signature, str):
        return None
    part: JSON = {"text": text if isinstance(text, str) else "", "thought": True}
    if signature.startswith(GEMINI_CALL_SIGNATURE):  # the call part carries it itself
        return part if part["text"] else None
    part["thoughtSignature"] = signature.removeprefix(GEMINI_SIGNATURE)
    return part


def delta_parts(delta: JSON) -> list[JSON]:
    """A hub stream delta's reasoning as thought parts (a signature closes a block)."""
    parts: list[JSON] = []
    text = delta.get(REASONING_CONTENT)
    if isinstance(text, str) and text:
        parts.append({"text": text, "thought": True})
    signature = delta.get(REASONING_SIGNATURE)
    if isinstance(signature, str) and signature and not signature.startswith(GEMINI_CALL_SIGNATURE):
        signature = signature.removeprefix(GEMINI_SIGNATURE)
        parts.append({"text": "", "thought": True, "thoughtSignature": signature})
    redacted = delta.get(REDACTED_REASONING)
    if isinstance(redacted, str) and redacted:
        parts.append({"text": "", "thought": True, "thoughtSignature": REDACTED + redacted})
    return parts
