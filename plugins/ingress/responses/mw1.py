"""The gateway's own `encrypted_content` for Responses `reasoning` items ("mw1").

A non-OpenAI backend's thinking (Anthropic thinking blocks with their signatures, redacted
blocks) must come back to it on the next turn, but a Responses client only keeps what the
API gave it. So the blocks travel inside the reasoning item: `"mw1:"` followed by the
unpadded base64url of the JSON `{"b": [block, ...]}`, each block a hub thinking block
(`{"type": "thinking", "thinking", "signature"}` or `{"type": "redacted_thinking", "data"}`).
It is opaque to clients and not encrypted: it holds nothing the client did not see as a
summary, except the signatures, which only the backend can verify.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

PREFIX = "mw1:"


def encode(blocks: list[dict[str, Any]]) -> str:
    """The `encrypted_content` that carries `blocks`."""
    raw = json.dumps({"b": blocks}, separators=(",", ":"), ensure_ascii=False).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(content: str) -> list[dict[str, Any]] | None:
    """The thinking blocks in a mw1 `encrypted_content`; None for anything else (OpenAI's
    own blobs, or a mw1 value that was damaged)."""
    if not content.startswith(PREFIX):
        return None
    text = content[len(PREFIX) :]
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        return None
    blocks = data.get("b") if isinstance(data, dict) else None
    if not isinstance(blocks, list):
        return None
    return [block for block in blocks if _is_block(block)]


def _is_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    if block.get("type") == "thinking":
        return isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str)
    return block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str)


def carries_state(blocks: list[dict[str, Any]]) -> bool:
    """Whether the blocks are worth sending back: a signature or a redacted block (text
    alone, as DeepSeek or Gemini give it, cannot be replayed to the backend)."""
    return any(b.get("signature") or b.get("type") == "redacted_thinking" for b in blocks)
