"""Gemini 3's thinking levels per model, and the signature placeholder its tool turns need.

Pure; `gemini` and `vertex` (through `reasoning` and `request`).

- Levels: Gemini 3 models take `thinkingLevel` values of their own (Google's thinking pages,
  Gemini API and Vertex AI): Gemini 3 Pro `low` and `high`; Gemini 3.1 Pro `low`, `medium`
  and `high`; Gemini 3 Flash and 3.1 Flash-Lite all four. A level the hub asks for becomes
  the nearest one the model takes (a tie goes up: more thinking, not less); a Gemini 3 model
  not in the table gets the level as asked (its own 400 names what it takes).
- Signatures: a Gemini 3 model refuses a conversation whose current turn has a step without
  a signed first function call (Google's thought-signatures page: the turn starts at the
  newest user content with a part that is not a `functionResponse`; each model content after
  it is a step). History from another model, or from a client that dropped the signatures,
  gets Google's documented placeholder there, which the Gemini API and Vertex AI both take.
"""

from __future__ import annotations

import re
from typing import Any

JSON = dict[str, Any]

ORDER = ("minimal", "low", "medium", "high")
"""Gemini's thinking levels, least thinking first."""
_ALL = ORDER
LEVELS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("gemini-3-pro-image", None),
    ("gemini-3-pro", ("low", "high")),
    ("gemini-3.1-pro", ("low", "medium", "high")),
    ("gemini-3-flash", _ALL),
    ("gemini-3.1-flash-lite", _ALL),
)
"""Model-name prefixes and the levels they take (None: not known, the level as asked); the
first prefix that matches wins, so a longer one goes before the prefix it extends."""
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
"""Google's dummy signature for function calls it did not sign (both APIs document it)."""
_VERSION = re.compile(r"gemini-(\d+)")


def bare_model(model: str) -> str:
    """The model's own name, without `models/` or a Vertex resource path."""
    return model.rsplit("/", 1)[-1]


def leveled(model: str) -> bool:
    """Whether the model takes `thinkingLevel` (Gemini 3 and later)."""
    found = _VERSION.search(bare_model(model))
    return found is not None and int(found[1]) >= 3


def offered_levels(model: str) -> tuple[str, ...] | None:
    """The levels the model takes, or None when the table does not know the model."""
    name = bare_model(model)
    return next((levels for prefix, levels in LEVELS if name.startswith(prefix)), None)


def nearest_level(model: str, level: str) -> str:
    """The level the model takes that is nearest to `level` (one of `ORDER`)."""
    offered = offered_levels(model)
    if offered is None or level in offered:
        return level
    rank = ORDER.index(level)
    return min(offered, key=lambda o: (abs(ORDER.index(o) - rank), -ORDER.index(o)))


def sign_current_turn(contents: list[JSON]) -> None:
    """Put the placeholder on the first function call of each step of the current turn
    that carries no signature of its own (real signatures are left as they are)."""
    for content in reversed(contents):
        parts = content.get("parts") or []
        if content.get("role") != "model":
            if any("functionResponse" not in part for part in parts):
                return  # the user's own words: the current turn starts here
            continue
        first = next((part for part in parts if "functionCall" in part), None)
        if first is not None and not first.get("thoughtSignature"):
            first["thoughtSignature"] = PLACEHOLDER_SIGNATURE
