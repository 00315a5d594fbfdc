"""The Anthropic Messages API's wire format for fake upstreams.

`AnthropicMessages` checks what the real API checks (the key in `x-api-key` or as a bearer
token, `anthropic-version`, known fields, no sampling fields with version 2026-10-21,
max_tokens, user/assistant alternation, tool_result blocks first and paired by id with the
previous turn's tool_use blocks) and answers with a Message built from the request: a text
answer quoting tool results, a tool call when tools are offered, or an echo; streamed as
`message_start` / `content_block_*` / `message_delta` / `message_stop` when asked.
`/v1/messages/count_tokens` answers `input_tokens` (`count_for`), refusing other fields. Field
names and event shapes follow Anthropic's Messages and Streaming references.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from modelway.testing.upstreams import Received, Reply

COUNT_PATH = "/v1/messages/count_tokens"

MESSAGES_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking",
        "service_tier", "container", "mcp_servers", "context_management",
    }
)  # fmt: skip
"""The request fields of the Messages API reference (POST /v1/messages)."""
COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
)
"""The request fields of POST /v1/messages/count_tokens (max_tokens is refused there)."""


def count_for(body: dict[str, Any]) -> int:
    """The fake's token count: one per 4 characters of the JSON of what is counted."""
    counted = {k: body[k] for k in ("system", "messages", "tools") if k in body}
    return 1 + len(json.dumps(counted, sort_keys=True)) // 4


# --------------------------------------------------------------------------- wire helpers


def sse(event: dict[str, Any]) -> bytes:
    """One Anthropic SSE event: the `event:` name is the data's `type`."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_test"}


def error_reply(status: int, kind: str, message: str, **headers: str) -> Reply:
    body = json.dumps(error_body(kind, message)).encode()
    return Reply(status=status, body=body, headers={"content-type": "application/json", **headers})


def stream_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream events that deliver `message`, split the way the API splits them."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block))
        if index == 0:
            events.append({"type": "ping"})
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append({"type": "message_delta", "delta": delta, "usage": usage})
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    if block["type"] == "text":
        opening: dict[str, Any] = {"type": "text", "text": ""}
        pieces = _pieces(block["text"], " ")
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
    elif block["type"] == "thinking":
        opening = {"type": "thinking", "thinking": ""}
        pieces = _pieces(block["thinking"], " ")
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        opening = {**block, "input": {}}
        pieces = _pieces(json.dumps(block["input"]), ", ")
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
    return [
        {"type": "content_block_start", "index": index, "content_block": opening},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def _pieces(text: str, separator: str) -> list[str]:
    parts = text.split(separator)
    return [part + (separator if i < len(parts) - 1 else "") for i, part in enumerate(parts)]


def stream_bytes(message: dict[str, Any]) -> list[bytes]:
    return [sse(event) for event in stream_events(message)]


# --------------------------------------------------------------------------- request checks

_SAMPLING = {"temperature", "top_p", "top_k"}
_BLOCKS = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"}


def request_problems(body: Any, known_fields: set[str] | frozenset[str]) -> list[str]:
    """What the Messages API would reject in `body` (structure only)."""
    if not isinstance(body, dict):
        return ["the body is not an object"]
    problems = [f"unknown field '{key}'" for key in body if key not in known_fields | _SAMPLING]
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        problems.append("max_tokens: field required")
    if not isinstance(body.get("model"), str):
        problems.append("model: field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "messages: at least one message is required"]
    return problems + _turn_problems(messages)


def _turn_problems(messages: list[Any]) -> list[str]:
    problems = []
    previous: dict[str, Any] | None = None
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected:
            problems.append(f"messages.{index}: roles must alternate, starting with user")
        problems += [f"messages.{index}: {p}" for p in _block_problems(message, previous)]
        previous = message
    return problems


def _blocks(message: dict[str, Any] | None) -> list[dict[str, Any]]:
    content = message.get("content") if message else None
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _block_problems(message: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    blocks = _blocks(message)
    problems = [
        f"unknown block type {b.get('type')}" for b in blocks if b.get("type") not in _BLOCKS
    ]
    problems += ["empty text block" for b in blocks if b.get("type") == "text" and not b["text"]]
    kinds = [b.get("type") for b in blocks]
    results_first = kinds.count("tool_result")
    if kinds[:results_first] != ["tool_result"] * results_first:
        problems.append("tool_result blocks must come first")
    used = {b["id"] for b in _blocks(previous) if b.get("type") == "tool_use"}
    results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
    if results - used or (used and message.get("role") == "user" and used - results):
        problems.append("each tool_use needs a tool_result in the next message, by id")
    problems += [
        "tool_use input must be an object"
        for b in blocks
        if b.get("type") == "tool_use" and not isinstance(b.get("input"), dict)
    ]
    return problems


# --------------------------------------------------------------------------- answers


def last_user_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    return _blocks(body["messages"][-1])


def answer_for(body: dict[str, Any]) -> dict[str, Any]:
    """A Message built from the request: a tool answer, a tool call, or an echo."""
    blocks = last_user_blocks(body)
    results = [b for b in blocks if b.get("type") == "tool_result"]
    tools = body.get("tools") or []
    if results:
        content: list[dict[str, Any]] = [{"type": "text", "text": _result_text(results)}]
        stop = "end_turn"
    elif tools and (body.get("tool_choice") or {}).get("type") != "none":
        content = [
            {"type": "text", "text": "Let me look that up."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": tools[0]["name"],
                "input": {"location": "Paris, France", "unit": "celsius"},
            },
        ]
        stop = "tool_use"
    else:
        text = " ".join(b["text"] for b in blocks if b.get("type") == "text")
        content, stop = [{"type": "text", "text": f"echo: {text}"}], "end_turn"
    return _message(body, content, stop)


def _result_text(results: list[dict[str, Any]]) -> str:
    texts = [r["content"] if isinstance(r.get("content"), str) else "?" for r in results]
    return "The tool said: " + "; ".join(texts)


def _message(body: dict[str, Any], content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    words = sum(len(str(b.get("text", b.get("input", ""))).split()) for b in content)
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 11,
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 5,
            "output_tokens": words,
        },
    }


VERSIONS = ("2023-06-01", "2026-10-21")
"""The `anthropic-version` values the API accepts; 2026-10-21 removed the sampling fields."""


def _api_key(headers: dict[str, str]) -> str | None:
    """`x-api-key` wins; `authorization: Bearer` is accepted too (SDK 2.x sends that)."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)


class AnthropicMessages:
    """A behavior for `UpstreamServer` that speaks the Messages API.

    Set `reply` to a function returning a Reply (or None) to script an answer after the
    request passed the checks; `problems` collects what the checks rejected.
    """

    def __init__(
        self,
        known_fields: set[str] | frozenset[str] | None = None,
        api_key: str = "sk-ant-gateway",
    ) -> None:
        self.known_fields = MESSAGES_FIELDS if known_fields is None else known_fields
        self.api_key = api_key
        self.problems: list[str] = []
        self.reply: Callable[[dict[str, Any]], Reply | None] | None = None

    def __call__(self, received: Received) -> Reply:
        path = received.path.split("?")[0]
        if received.method != "POST" or path not in ("/v1/messages", COUNT_PATH):
            return error_reply(404, "not_found_error", f"no route {received.path}")
        if _api_key(received.headers) != self.api_key:
            return error_reply(401, "authentication_error", "invalid x-api-key")
        version = received.headers.get("anthropic-version")
        if version not in VERSIONS:
            return error_reply(400, "invalid_request_error", "anthropic-version is required")
        body = received.json
        if path == COUNT_PATH:
            return self._count(body)
        problems = request_problems(body, self.known_fields)
        if version >= "2026-10-21":
            problems += [f"{key}: Extra inputs are not permitted" for key in _SAMPLING & set(body)]
        if problems:
            self.problems += problems
            return error_reply(400, "invalid_request_error", "; ".join(problems))
        scripted = self.reply(body) if self.reply else None
        return scripted or self.answer(body)

    def _count(self, body: Any) -> Reply:
        extra = sorted(set(body) - COUNT_FIELDS) if isinstance(body, dict) else ["body"]
        problems = [f"{key}: Extra inputs are not permitted" for key in extra]
        if isinstance(body, dict) and not body.get("messages"):
            problems.append("messages: Field required")
        if problems:
            self.problems += problems
            return error_reply(400, "invalid_request_error", "; ".join(problems))
        return Reply(body=json.dumps({"input_tokens": count_for(body)}).encode())

    @staticmethod
    def answer(body: dict[str, Any]) -> Reply:
        message = answer_for(body)
        if body.get("stream"):
            return Reply(
                headers={"content-type": "text/event-stream"}, chunks=stream_bytes(message)
            )
        return Reply(body=json.dumps(message).encode())
