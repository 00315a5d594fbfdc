"""Gemini's generateContent / streamGenerateContent wire format for fake upstreams.

The answer is built from the request it received (field names as in the Gemini API
reference): a `functionResponse` in the last turn is answered with text quoting it, a request
with function declarations gets `functionCall`s, any other request gets an echo of the last
user text. A user text containing "unsafe" ends with finishReason SAFETY and no content.
Streams carry the same answer split into `data:` events (CRLF line ends, as Google sends).
`:countTokens` answers `totalTokens` (`count_for`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelway.testing.upstreams import Behavior, Received, Reply

SSE = {"content-type": "text/event-stream"}
RESPONSE_ID = "resp-7Hq2"
USAGE_META = {
    "promptTokenCount": 21,
    "cachedContentTokenCount": 4,
    "thoughtsTokenCount": 3,
}


@dataclass
class Plan:
    """What the fake model answers, before it is cut into a response or a stream."""

    model: str
    pieces: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str = "STOP"

    def usage(self, pieces_so_far: int) -> dict[str, Any]:
        candidates = pieces_so_far + 5 * len(self.calls)
        total = USAGE_META["promptTokenCount"] + candidates + USAGE_META["thoughtsTokenCount"]
        return {**USAGE_META, "candidatesTokenCount": candidates, "totalTokenCount": total}


def user_text(request: dict[str, Any]) -> str:
    for content in reversed(request["contents"]):
        texts = [p["text"] for p in content["parts"] if "text" in p]
        if content["role"] == "user" and texts:
            return " ".join(texts)
    return ""


def plan_for(request: dict[str, Any], model: str) -> Plan:
    last = request["contents"][-1]["parts"]
    responses = [p["functionResponse"] for p in last if "functionResponse" in p]
    if responses:
        said = "; ".join(f"{r['name']}={json.dumps(r['response'])}" for r in responses)
        return Plan(model, pieces=_words(f"Results: {said}"))
    text = user_text(request)
    if "unsafe" in text:
        return Plan(model, pieces=["I", " cannot"], finish="SAFETY")
    declarations = [d for t in request.get("tools", []) for d in t["functionDeclarations"]]
    if declarations:
        calls = [
            {"name": d["name"], "args": {"query": text, "n": i}} for i, d in enumerate(declarations)
        ]
        return Plan(model, pieces=[], calls=calls)
    return Plan(model, pieces=_words(f"echo: {text}"))


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def whole_response(plan: Plan) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if plan.pieces and plan.finish == "STOP":
        parts.append({"text": "".join(plan.pieces)})
    parts += [{"functionCall": c} for c in plan.calls]
    return _response(plan, parts, plan.finish, plan.usage(len(plan.pieces)))


def stream_events(plan: Plan) -> list[dict[str, Any]]:
    """One event per text piece, the function calls together, the finish with the usage."""
    events = []
    shown = plan.pieces if plan.finish == "STOP" else plan.pieces[:1]
    for count, piece in enumerate(shown, 1):
        events.append(_response(plan, [{"text": piece}], None, plan.usage(count)))
    if plan.calls:
        parts = [{"functionCall": c} for c in plan.calls]
        events.append(_response(plan, parts, None, plan.usage(len(plan.pieces))))
    events.append(_response(plan, [], plan.finish, plan.usage(len(plan.pieces))))
    return events


def _response(
    plan: Plan, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    if finish == "SAFETY":
        candidate["safetyRatings"] = [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
        ]
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": plan.model,
        "responseId": RESPONSE_ID,
    }


def google_error(status: int, google_status: str, message: str, **extra: Any) -> Reply:
    error: dict[str, Any] = {"code": status, "message": message, "status": google_status}
    error.update(extra)
    return Reply(status=status, body=json.dumps({"error": error}).encode())


def sse_chunks(events: list[dict[str, Any]]) -> list[bytes]:
    return [b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events]


def api_key_check(key: str) -> Callable[[Received], Reply | None]:
    """An `authorized` check for Gemini API keys (`x-goog-api-key`), answered as Google does."""

    def check(received: Received) -> Reply | None:
        if received.headers.get("x-goog-api-key") != key:
            return google_error(400, "INVALID_ARGUMENT", "API key not valid.")
        return None

    return check


def count_for(request: dict[str, Any]) -> int:
    """The fake's token count: one per 4 characters of the JSON of the contents (and the
    system instruction and tools of a `generateContentRequest`)."""
    inner = request.get("generateContentRequest") or {}
    counted = [request.get("contents"), inner.get("contents")]
    counted += [inner.get("systemInstruction"), inner.get("tools")]
    return 1 + len(json.dumps(counted, sort_keys=True)) // 4


def count_reply(request: Any) -> Reply:
    """countTokens takes `contents` or a `generateContentRequest`, nothing else."""
    if not isinstance(request, dict) or set(request) - {"contents", "generateContentRequest"}:
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    return Reply(body=json.dumps({"totalTokens": count_for(request)}).encode())


def gemini_behavior(
    prefix: str | None = None, authorized: Callable[[Received], Reply | None] | None = None
) -> Behavior:
    """Answers POST {prefix}{model}:generateContent / :streamGenerateContent?alt=sse; the
    prefix is `/v1beta/models/` or `/v1/models/` by default, as the API serves both.

    `authorized` returns an error Reply when the request's credentials are wrong (default:
    any credentials pass).
    """
    start = r"/v1(?:beta)?/models/" if prefix is None else re.escape(prefix)
    pattern = re.compile(
        start + r"(?P<model>[^/:?]+):(?P<method>generateContent|countTokens|"
        r"streamGenerateContent\?alt=sse)"
    )

    def behave(received: Received) -> Reply:
        match = pattern.fullmatch(received.path)
        if received.method != "POST" or match is None:
            return google_error(404, "NOT_FOUND", f"unexpected {received.method} {received.path}")
        denied = authorized(received) if authorized else None
        if denied is not None:
            return denied
        if match["method"] == "countTokens":
            return count_reply(received.json)
        plan = plan_for(received.json, match["model"])
        if match["method"].startswith("stream"):
            return Reply(headers=dict(SSE), chunks=sse_chunks(stream_events(plan)))
        return Reply(body=json.dumps(whole_response(plan)).encode())

    return behave
