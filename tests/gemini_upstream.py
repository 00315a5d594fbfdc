"""A fake upstream that speaks Gemini's generateContent wire format, for the Gemini and Vertex
tests, plus helpers to compare what an OpenAI client received.

The answer is built from the request it received (field names as in the Gemini API
reference): a `functionResponse` in the last turn is answered with text quoting it, a request
with function declarations gets `functionCall`s, any other request gets an echo of the last
user text. A user text containing "unsafe" ends with finishReason SAFETY and no content.
Streams carry the same answer split into `data:` events (CRLF line ends, as Google sends).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.upstreams import Behavior, Received, Reply

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


def gemini_behavior(prefix: str, authorized: Callable[[Received], Reply | None]) -> Behavior:
    """Answers POST {prefix}{model}:generateContent / :streamGenerateContent?alt=sse.

    `authorized` returns an error Reply when the request's credentials are wrong.
    """
    pattern = re.compile(
        re.escape(prefix) + r"(?P<model>[^/:?]+):(?P<method>generateContent|"
        r"streamGenerateContent\?alt=sse)"
    )

    def behave(received: Received) -> Reply:
        match = pattern.fullmatch(received.path)
        if received.method != "POST" or match is None:
            return google_error(404, "NOT_FOUND", f"unexpected {received.method} {received.path}")
        denied = authorized(received)
        if denied is not None:
            return denied
        plan = plan_for(received.json, match["model"])
        if match["method"].startswith("stream"):
            return Reply(headers=dict(SSE), chunks=sse_chunks(stream_events(plan)))
        return Reply(body=json.dumps(whole_response(plan)).encode())

    return behave


# ------------------------------------------------------------------------- client side


def reassemble(chunks: list[Any]) -> dict[str, Any]:
    """The answer an OpenAI client rebuilds from stream chunks (choice 0), plus usage."""
    content: str | None = None
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = _usage(chunk.usage)
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                content = (content or "") + delta.content
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return {
        "content": content,
        "tool_calls": [calls[i] for i in sorted(calls)],
        "finish_reason": finish,
        "usage": usage,
    }


def flatten(answer: Any) -> dict[str, Any]:
    """A non-streamed answer in the shape `reassemble` gives."""
    message = answer.choices[0].message
    calls = [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls or []
    ]
    return {
        "content": message.content,
        "tool_calls": calls,
        "finish_reason": answer.choices[0].finish_reason,
        "usage": _usage(answer.usage) if answer.usage else None,
    }


def _usage(usage: Any) -> dict[str, Any]:
    prompt_details = usage.prompt_tokens_details
    completion_details = usage.completion_tokens_details
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": prompt_details.cached_tokens if prompt_details else None,
        "reasoning_tokens": completion_details.reasoning_tokens if completion_details else None,
    }
