"""Real upstreams for the Responses API tests: one scripted model behind four wire formats.

Each is a `behavior` for `modelway.testing.upstreams.UpstreamServer`: the OpenAI Responses API (with
its own response store: `previous_response_id`, GET, DELETE, input_items), OpenAI chat
completions, Anthropic Messages (thinking with signatures when asked) and Gemini. The model
answers the same way on every wire: the tool outputs after the last user turn as
"The tool said: ...", else a call of the first declared tool, else "echo: <user text>".
Usage is fixed (20 input tokens of which 5 cached, 8 output of which 3 reasoning where the
wire has them), so tests can check how each wire's usage reaches the client.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from modelway.testing.upstreams import Received, Reply

Json = dict[str, Any]
SSE = {"content-type": "text/event-stream"}
KEY = "sk-upstream"
SIGNATURE = "EqQBCkYIBRgCIkBvdW5kLXNpZ25hdHVyZQ"
THOUGHT = "The user wants an answer; I will use the tool."


@dataclass
class Answer:
    text: str = ""
    call: tuple[str, str] | None = None
    """(tool name, JSON arguments)."""


def decide(user_text: str, tools: list[tuple[str, Json]], results: list[str]) -> Answer:
    if results:
        return Answer("The tool said: " + "; ".join(results))
    if tools:
        name, schema = tools[0]
        return Answer(call=(name, json.dumps(arguments_for(schema))))
    return Answer(f"echo: {user_text}")


def arguments_for(schema: Json) -> Json:
    values = {"cmd": "echo tool-ran-ok", "city": "Paris"}
    return {name: values.get(name, "x") for name in schema.get("required") or ()}


def pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def sse(events: list[Json], named: bool = True) -> list[bytes]:
    out = []
    for event in events:
        head = f"event: {event['type']}\n" if named and "type" in event else ""
        out.append((head + "data: " + json.dumps(event) + "\n\n").encode())
    return out


def error(status: int, message: str) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None,
                      "code": "not_found" if status == 404 else None}}
    return Reply(status=status, body=json.dumps(body).encode())


def _authorized(received: Received) -> bool:
    auth = received.headers.get("authorization", "")
    return received.headers.get("x-api-key") == KEY or auth == f"Bearer {KEY}" or \
        received.headers.get("api-key") == KEY or "key=" + KEY in received.path or \
        received.headers.get("x-goog-api-key") == KEY


class Recording:
    """Records every request; a wrong key gets `refusal`, anything else `answer`."""

    refusal = error(401, "Incorrect API key provided")

    def __init__(self) -> None:
        self.requests: list[Received] = []

    def __call__(self, received: Received) -> Reply:
        self.requests.append(received)
        return self.answer(received) if _authorized(received) else self.refusal

    def answer(self, received: Received) -> Reply:
        raise NotImplementedError


# ------------------------------------------------------------------ OpenAI Responses API


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict))


class ResponsesBackend(Recording):
    """The Responses API, with a response store of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, Json] = {}
        self._lock = threading.Lock()
        self._count = 0

    def answer(self, received: Received) -> Reply:
        path = received.path.split("?")[0]
        if received.method == "POST" and path.endswith("/responses"):
            return self._create(received.json)
        found = re.search(r"/responses/([^/]+)(/input_items)?$", path)
        if found is None or found[1] not in self.stored:
            return error(404, f"No response found with id '{found[1] if found else ''}'.")
        record = self.stored[found[1]]
        if found[2]:
            data = list(reversed(record["input"]))
            return _json({"object": "list", "data": data, "has_more": False,
                          "first_id": data[0]["id"], "last_id": data[-1]["id"]})
        if received.method == "DELETE":
            del self.stored[found[1]]
            return _json({"id": found[1], "object": "response", "deleted": True})
        return _json(record["response"])

    def _create(self, body: Json) -> Reply:
        history: list[Json] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            if previous not in self.stored:
                return Reply(status=400, body=json.dumps({"error": {
                    "message": f"Previous response with id '{previous}' not found.",
                    "type": "invalid_request_error", "param": "previous_response_id",
                    "code": "previous_response_not_found"}}).encode())
            history = self.stored[previous]["conversation"]
        raw = body.get("input")
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
        conversation = history + items
        with self._lock:
            self._count += 1
            rid = f"resp_up{self._count:06d}"
        output = self._output(body, conversation, rid)
        response = _response(body, rid, "completed", output)
        if body.get("store") is not False:
            listed = [{"id": f"in_{rid}_{i}", "type": "message", **item}
                      for i, item in enumerate(items)]
            self.stored[rid] = {"response": response, "input": listed,
                                "conversation": conversation + output}
        if body.get("stream"):
            return Reply(headers=dict(SSE), chunks=sse(response_events(body, rid, output)))
        return _json(response)

    def _output(self, body: Json, conversation: list[Json], rid: str) -> list[Json]:
        last_user = max((i for i, item in enumerate(conversation)
                         if item.get("role") == "user"), default=-1)
        results = [str(item.get("output")) for item in conversation[last_user + 1:]
                   if item.get("type") == "function_call_output"]
        user = _text_of(conversation[last_user].get("content")) if last_user >= 0 else ""
        tools = [(t["name"], t.get("parameters") or {}) for t in body.get("tools") or ()
                 if t.get("type") == "function"]
        answer = decide(user, tools, results)
        output: list[Json] = []
        if (body.get("reasoning") or {}).get("effort"):
            output.append({"id": f"rs_{rid}", "type": "reasoning", "summary": [
                {"type": "summary_text", "text": THOUGHT}], "encrypted_content": "gAAAA-openai"})
        if answer.call is not None:
            output.append({"id": f"fc_{rid}", "type": "function_call", "status": "completed",
                           "call_id": f"call_{rid}", "name": answer.call[0],
                           "arguments": answer.call[1]})
        else:
            output.append({"id": f"msg_{rid}", "type": "message", "status": "completed",
                           "role": "assistant", "content": [{
                               "type": "output_text", "text": answer.text, "annotations": [],
                               "logprobs": []}]})
        return output


def _json(data: Any) -> Reply:
    return Reply(body=json.dumps(data).encode())


def _response(body: Json, rid: str, status: str, output: list[Json]) -> Json:
    usage = {"input_tokens": 20,
             "input_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 0},
             "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 3},
             "total_tokens": 28}
    return {
        "id": rid, "object": "response", "created_at": 1700000000, "status": status,
        "background": False, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "model": body.get("model"),
        "output": output, "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True), "temperature": 1.0, "tool_choice": "auto",
        "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled",
        "usage": usage if status == "completed" else None, "metadata": {},
        "text": {"format": {"type": "text"}},
    }


def response_events(body: Json, rid: str, output: list[Json]) -> list[Json]:
    """The typed event stream of a response, numbered."""
    started = _response(body, rid, "in_progress", [])
    events: list[Json] = [{"type": "response.created", "response": started},
                          {"type": "response.in_progress", "response": started}]
    for index, item in enumerate(output):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "content": []}})
            events.append({"type": "response.content_part.added", **where, "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": []}})
            events += [{"type": "response.output_text.delta", **where, "content_index": 0,
                        "delta": piece, "logprobs": []} for piece in pieces(text)]
            events.append({"type": "response.output_text.done", **where, "content_index": 0,
                           "text": text, "logprobs": []})
            events.append({"type": "response.content_part.done", **where, "content_index": 0,
                           "part": item["content"][0]})
        elif item["type"] == "function_call":
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "status": "in_progress", "arguments": ""}})
            events.append({"type": "response.function_call_arguments.delta", **where,
                           "delta": item["arguments"]})
            events.append({"type": "response.function_call_arguments.done", **where,
                           "name": item["name"], "arguments": item["arguments"]})
        else:
            events.append({"type": "response.output_item.added", "output_index": index,
                           "item": {**item, "summary": []}})
        events.append({"type": "response.output_item.done", "output_index": index,
                       "item": item})
    events.append({"type": "response.completed",
                   "response": _response(body, rid, "completed", output)})
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


# ------------------------------------------------------------------- OpenAI chat completions


class ChatBackend(Recording):
    """Chat completions only (an OpenAI-compatible server without the Responses API)."""

    def answer(self, received: Received) -> Reply:
        if not received.path.endswith("/chat/completions"):
            return error(404, f"unknown path {received.path}")
        body = received.json
        messages = body["messages"]
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        results = [str(m["content"]) for m in messages[last_user + 1:] if m["role"] == "tool"]
        tools = [(t["function"]["name"], t["function"].get("parameters") or {})
                 for t in body.get("tools") or ()]
        answer = decide(_text_of(messages[last_user]["content"]), tools, results)
        message: Json = {"role": "assistant", "content": answer.text or None}
        if answer.call:
            message["tool_calls"] = [{"id": "call_chat1", "type": "function", "function": {
                "name": answer.call[0], "arguments": answer.call[1]}}]
        usage = {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28,
                 "prompt_tokens_details": {"cached_tokens": 5},
                 "completion_tokens_details": {"reasoning_tokens": 3}}
        finish = "tool_calls" if answer.call else "stop"
        if not body.get("stream"):
            return _json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                          "model": body["model"], "usage": usage, "choices": [
                              {"index": 0, "message": message, "finish_reason": finish}]})
        return Reply(headers=dict(SSE), chunks=_chat_chunks(body, answer, usage, finish))


def _chat_chunks(body: Json, answer: Answer, usage: Json, finish: str) -> list[bytes]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": body["model"]}

    def chunk(delta: Json, reason: str | None = None) -> Json:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

    deltas = [chunk({"role": "assistant", "content": ""})]
    deltas += [chunk({"content": piece}) for piece in pieces(answer.text)] if answer.text else []
    if answer.call:
        deltas.append(chunk({"tool_calls": [{"index": 0, "id": "call_chat1", "type": "function",
                                             "function": {"name": answer.call[0],
                                                          "arguments": answer.call[1]}}]}))
    deltas.append(chunk({}, finish))
    deltas.append({**head, "choices": [], "usage": usage})
    return [*sse(deltas, named=False), b"data: [DONE]\n\n"]


# ------------------------------------------------------------------------ Anthropic Messages


class AnthropicBackend(Recording):
    """The Messages API; with `thinking` enabled, a signed thinking block comes first."""

    refusal = Reply(status=401, body=b'{"type":"error","error":{"type":'
                    b'"authentication_error","message":"invalid x-api-key"}}')

    def answer(self, received: Received) -> Reply:
        body = received.json
        last = body["messages"][-1]
        blocks = last["content"] if isinstance(last["content"], list) else [
            {"type": "text", "text": last["content"]}]
        results = [str(b.get("content") if isinstance(b.get("content"), str)
                       else _text_of(b.get("content")))
                   for b in blocks if b.get("type") == "tool_result"]
        text = " ".join(b["text"] for b in blocks if b.get("type") == "text")
        tools = [(t["name"], t.get("input_schema") or {}) for t in body.get("tools") or ()]
        answer = decide(text, tools, results)
        content: list[Json] = []
        if (body.get("thinking") or {}).get("type") == "enabled":
            content.append({"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE})
        if answer.call:
            content.append({"type": "tool_use", "id": "toolu_01", "name": answer.call[0],
                            "input": json.loads(answer.call[1])})
        else:
            content.append({"type": "text", "text": answer.text})
        message = {"id": "msg_01", "type": "message", "role": "assistant",
                   "model": body["model"], "content": content,
                   "stop_reason": "tool_use" if answer.call else "end_turn",
                   "stop_sequence": None,
                   "usage": {"input_tokens": 15, "cache_read_input_tokens": 5,
                             "cache_creation_input_tokens": 0, "output_tokens": 8}}
        if body.get("stream"):
            return Reply(headers=dict(SSE), chunks=sse(_anthropic_events(message)))
        return _json(message)


def _anthropic_events(message: Json) -> list[Json]:
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    events: list[Json] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        empty = {"thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "text": {"type": "text", "text": ""},
                 "tool_use": {**block, "input": {}}}[kind]
        events.append({"type": "content_block_start", "index": index, "content_block": empty})
        if kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]},
                      {"type": "signature_delta", "signature": block["signature"]}]
        elif kind == "text":
            deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
        else:
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                   "stop_sequence": None}, "usage": {"output_tokens": 8}})
    events.append({"type": "message_stop"})
    return events


# ------------------------------------------------------------------------------------ Gemini


def _gemini_result(response: Any) -> str:
    """A tool's text (gateways wrap a plain text as `{"output": text}`)."""
    if isinstance(response, dict) and set(response) == {"output"}:
        return str(response["output"])
    return json.dumps(response)


class GeminiBackend(Recording):
    """`models/{m}:generateContent` and `:streamGenerateContent?alt=sse`."""

    refusal = Reply(status=400, body=b'{"error":{"code":400,"message":"API key not '
                    b'valid.","status":"INVALID_ARGUMENT"}}')

    def answer(self, received: Received) -> Reply:
        body = received.json
        last = body["contents"][-1]["parts"]
        results = [_gemini_result(p["functionResponse"]["response"]) for p in last
                   if "functionResponse" in p]
        text = " ".join(p["text"] for p in last if "text" in p)
        tools = [(d["name"], d.get("parameters") or d.get("parametersJsonSchema") or {})
                 for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()]
        answer = decide(text, tools, results)
        parts: list[Json] = [{"functionCall": {"name": answer.call[0],
                                               "args": json.loads(answer.call[1])}}] \
            if answer.call else [{"text": answer.text}]
        usage = {"promptTokenCount": 20, "cachedContentTokenCount": 5,
                 "candidatesTokenCount": 5, "thoughtsTokenCount": 3, "totalTokenCount": 28}

        def response(parts: list[Json], finish: str | None) -> Json:
            candidate: Json = {"content": {"role": "model", "parts": parts}, "index": 0}
            if finish:
                candidate["finishReason"] = finish
            return {"candidates": [candidate], "usageMetadata": usage,
                    "modelVersion": "gemini-up", "responseId": "gem-1"}

        if "stream" not in received.path:
            return _json(response(parts, "STOP"))
        events = [response([{"text": p}], None) for p in pieces(answer.text)] \
            if answer.text else [response(parts, None)]
        events.append(response([], "STOP"))
        return Reply(headers=dict(SSE), chunks=sse(events, named=False))
