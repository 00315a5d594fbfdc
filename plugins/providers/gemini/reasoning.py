"""Hub reasoning (`modelway.hubext`) to and from a Gemini backend. Pure; `gemini` and `vertex`.

- Request: the hub's `thinking` and `reasoning_effort` as `generationConfig.thinkingConfig`.
  A budget is `thinkingBudget` (every model takes one); an effort alone is `thinkingLevel` on
  Gemini 3 and later (the nearest level the model takes, `levels`), a budget from
  `EFFORT_BUDGETS` before; adaptive thinking is dynamic (`thinkingBudget: -1`, the model's
  own level on Gemini 3); disabled is budget 0 (the least level the model takes on Gemini 3).
  Thinking asks for `includeThoughts`, so the thoughts come back.
- Answers: thought parts (`thought: true`) are the hub's `reasoning_content`; every
  `thoughtSignature` closes a thinking block (`gemini:` signature; `gemini:call:<n>:` for the
  function call it sat on), whole and streamed (`reasoning_content`, `reasoning_signature`).
  A text part's signature is kept only when the request asked for reasoning (Gemini does
  not need it back; a client that asked for none gets no thinking block); a call's always.
- History: a model turn's Gemini signatures go back on the part they came from (a call's on
  its call, a text part's on the turn's last text); other APIs' signatures, redacted blocks
  and thought text stay out (Gemini cannot read them, and does not need its thoughts back).
"""

from __future__ import annotations

from typing import Any

from modelway.errors import bad_request
from modelway.hubext import (
    EFFORT_BUDGETS,
    GEMINI_SIGNATURE,
    REASONING_CONTENT,
    REASONING_SIGNATURE,
    THINKING,
    THINKING_BLOCKS,
    gemini_call_signature,
    gemini_signature,
)
from modelway.plugins.providers.gemini.levels import leveled, nearest_level

JSON = dict[str, Any]

_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_MAX_EFFORT_BUDGET = 24576
"""The largest budget every Gemini 2.5 model takes (Flash's maximum; Pro's is 32768)."""


def asks_reasoning(body: JSON) -> bool:
    """Whether a hub request asks for reasoning (thinking on, or an effort other than none)."""
    thinking = body.get(THINKING)
    if isinstance(thinking, dict):
        return thinking.get("type") != "disabled"
    effort = body.get("reasoning_effort")
    return isinstance(effort, str) and effort != "none"


def thinking_config(body: JSON, model: str) -> JSON:
    """`thinkingConfig` for the hub's reasoning (empty: the model's default)."""
    thinking = body.get(THINKING)
    if thinking is not None:
        return _from_thinking(thinking, model)
    effort = body.get("reasoning_effort")
    return {} if effort is None else _from_effort(effort, model)


def _from_thinking(thinking: Any, model: str) -> JSON:
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return _off(model)
    if kind == "adaptive":
        dynamic: JSON = {} if leveled(model) else {"thinkingBudget": -1}
        return {**dynamic, "includeThoughts": True}
    budget = thinking.get("budget_tokens") if kind == "enabled" else None
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        return {"thinkingBudget": budget, "includeThoughts": True}
    raise bad_request(
        f"thinking must be enabled (with a positive budget_tokens), adaptive or disabled "
        f"for the Gemini backend ({model})",
        param="thinking",
    )


def _from_effort(effort: Any, model: str) -> JSON:
    if effort == "none":
        return _off(model)
    if not isinstance(effort, str) or effort not in _LEVELS:
        raise bad_request(
            f"reasoning_effort {effort!r} cannot be sent to the Gemini backend ({model}): "
            "use none, minimal, low, medium, high or xhigh",
            param="reasoning_effort",
        )
    if leveled(model):
        return {"thinkingLevel": nearest_level(model, _LEVELS[effort]), "includeThoughts": True}
    budget = min(EFFORT_BUDGETS[effort], _MAX_EFFORT_BUDGET)
    return {"thinkingBudget": budget, "includeThoughts": True}


def _off(model: str) -> JSON:
    if leveled(model):
        return {"thinkingLevel": nearest_level(model, "minimal")}
    return {"thinkingBudget": 0}


# --------------------------------------------------------------------------- answers


class PartReasoning:
    """The reasoning of one candidate, read part by part (whole answers and streams)."""

    def __init__(self, text_signatures: bool) -> None:
        self.text_signatures = text_signatures
        self.texts: list[str] = []
        self.pending: list[str] = []
        self.blocks: list[JSON] = []

    def read(self, part: JSON, call: int | None = None) -> JSON:
        """The hub delta fields of one part's reasoning: its thought text, and the
        signature that closes a thinking block (`call`: the part is that tool call)."""
        out: JSON = {}
        text = part.get("text")
        if part.get("thought") is True and isinstance(text, str) and text:
            self.texts.append(text)
            self.pending.append(text)
            out[REASONING_CONTENT] = text
        signature = self._signature(part, call)
        if signature is not None:
            self.blocks.append(_block("".join(self.pending), signature))
            self.pending = []
            out[REASONING_SIGNATURE] = signature
        return out

    def _signature(self, part: JSON, call: int | None) -> str | None:
        signature = part.get("thoughtSignature")
        if not isinstance(signature, str) or not signature:
            return None
        if call is not None:
            return gemini_call_signature(call, signature)
        if part.get("thought") is True or self.text_signatures:
            return GEMINI_SIGNATURE + signature
        return None

    def fields(self) -> JSON:
        """The hub message fields (empty when the candidate had no reasoning); thought text
        after the last signature is an unsigned block, so no text is lost beside them."""
        out: JSON = {}
        if self.texts:
            out[REASONING_CONTENT] = "".join(self.texts)
        blocks = self.blocks
        if blocks and self.pending:
            blocks = [*blocks, _block("".join(self.pending), "")]
        if blocks:
            out[THINKING_BLOCKS] = blocks
        return out


def _block(thinking: str, signature: str) -> JSON:
    return {"type": "thinking", "thinking": thinking, "signature": signature}


# --------------------------------------------------------------------------- history


def turn_signatures(message: JSON) -> tuple[str | None, dict[int, str]]:
    """A hub assistant message's Gemini signatures: the text part's, and each tool call's
    (by its index); a call's own `extra_content` signature is read where the call is built."""
    text: str | None = None
    calls: dict[int, str] = {}
    blocks = message.get(THINKING_BLOCKS)
    for block in blocks if isinstance(blocks, list) else []:
        found = gemini_signature(block.get("signature")) if isinstance(block, dict) else None
        if found is None or block.get("type") != "thinking":
            continue
        number, signature = found
        if number is not None:
            calls.setdefault(number, signature)
        elif text is None:
            text = signature
    return text, calls


def sign_text(parts: list[JSON], signature: str | None) -> None:
    """Put a text part's signature back on the turn's last text part (kept out when the
    turn has no text: Gemini does not need it, and refuses empty text parts)."""
    if signature is None:
        return
    for part in reversed(parts):
        if "text" in part and "thoughtSignature" not in part:
            part["thoughtSignature"] = signature
            return
