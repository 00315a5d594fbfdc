"""The Gemini `generateContent` wire API on the same-API lane: policy views, stream scanner.

Google accepts both camelCase and snake_case field names; the views read and write whichever
spelling the client used. Thought parts (`thought: true`) are not policy text. Streams
(`alt=sse`) pass as the upstream's events; only an event with a `finishReason` (it carries
the final usage) or an error is parsed; with a text filter every event is decoded and its
text parts edited per candidate, held text being released in the candidate's finishing event.
"""

from __future__ import annotations

from typing import Any

from modelway.canonical import Usage
from modelway.context import RequestContext
from modelway.errors import GatewayError
from modelway.ingress import WireSupport
from modelway.nativestream import SSEStream, event_json, frame
from modelway.viewkit import (
    Path,
    SettingsView,
    dicts,
    object_string_segments,
    stop_list,
    text_segments,
)
from modelway.wire import (
    GEMINI_COUNT_TOKENS,
    GEMINI_GENERATE,
    PASSTHROUGH,
    Call,
    Segment,
    TextFilter,
)

FORWARD_HEADERS = (
    "x-goog-user-project",
    "x-goog-request-params",
    "x-goog-api-client",
    "x-server-timeout",
)
_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "max_tokens": "maxOutputTokens",
    "stop": "stopSequences",
    "seed": "seed",
}
_SNAKE = {
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_output_tokens",
    "stopSequences": "stop_sequences",
}


def spelled(body: dict[str, Any], camel: str, snake: str) -> str:
    """The key the client used for a field Google accepts in both spellings."""
    return snake if snake in body and camel not in body else camel


def gemini_usage(meta: Any) -> Usage | None:
    """`usageMetadata` as gateway usage (thoughts count as reasoning output tokens)."""
    if not isinstance(meta, dict):
        return None
    thoughts = _int(meta.get("thoughtsTokenCount"))
    return Usage(
        prompt_tokens=_int(meta.get("promptTokenCount")),
        completion_tokens=_int(meta.get("candidatesTokenCount")) + thoughts,
        cached_tokens=_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text_parts(holder: Any, role: str, kind: str, edited: Any) -> list[Segment]:
    out: list[Segment] = []
    for part in dicts(holder.get("parts") if isinstance(holder, dict) else None):
        if isinstance(part.get("text"), str) and not part.get("thought"):
            out.extend(text_segments(part, "text", role, kind, edited))
        for key, sub_kind in (
            ("functionCall", "tool_arguments"),
            ("functionResponse", "tool_result"),
        ):
            call = part.get(key) or part.get(_snake(key))
            inner = (
                call.get("args" if key == "functionCall" else "response")
                if isinstance(call, dict)
                else None
            )
            if isinstance(inner, dict):
                out.extend(object_string_segments(inner, role, sub_kind, edited))
    return out


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


class GenerateView(SettingsView):
    """A generateContent (or countTokens) body."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._prepended = 0
        self._system_prepended = 0
        self._config = spelled(self.body, "generationConfig", "generation_config")
        self._system = spelled(self.body, "systemInstruction", "system_instruction")

    def _path(self, name: str) -> Path:
        field = _CONFIG.get(name)
        if field is None:
            return () if name == "user" else (name,)
        if self._config == "generation_config":
            field = _SNAKE.get(field, field)
        return (self._config, field)

    def get(self, name: str) -> Any:
        return None if self._path(name) == () else super().get(name)

    def set(self, name: str, value: Any) -> None:
        if self._path(name) != ():
            super().set(name, value)

    def to_wire(self, name: str, value: Any) -> Any:
        return stop_list(value) if name == "stop" else value

    def segments(self) -> list[Segment]:
        out = _text_parts(self.body.get(self._system), "system", "system", self.edited)
        for content in dicts(self.body.get("contents")):
            role = "assistant" if content.get("role") == "model" else "user"
            out.extend(_text_parts(content, role, "text", self.edited))
        return out

    def prepend(self, role: str, text: str) -> None:
        if role in ("system", "developer"):
            self._system_parts().insert(self._system_prepended, {"text": text})
            self._system_prepended += 1
        else:
            contents = self._contents()
            contents.insert(self._prepended, {"role": _role(role), "parts": [{"text": text}]})
            self._prepended += 1
        self.edited()

    def append(self, role: str, text: str) -> None:
        if role in ("system", "developer"):
            self._system_parts().append({"text": text})
        else:
            contents = self._contents()
            last = contents[-1] if contents and isinstance(contents[-1], dict) else None
            if (
                last is not None
                and last.get("role", "user") == _role(role)
                and isinstance(last.get("parts"), list)
            ):
                last["parts"].append({"text": text})
            else:
                contents.append({"role": _role(role), "parts": [{"text": text}]})
        self.edited()

    def _system_parts(self) -> list[Any]:
        system = self.body.get(self._system)
        if not isinstance(system, dict):
            system = self.body[self._system] = {"parts": []}
        if not isinstance(system.get("parts"), list):
            system["parts"] = []
        parts: list[Any] = system["parts"]
        return parts

    def _contents(self) -> list[Any]:
        contents = self.body.get("contents")
        if not isinstance(contents, list):
            contents = self.body["contents"] = []
        return contents


def _role(role: str) -> str:
    return "model" if role == "assistant" else "user"


class GenerateResponseView:
    """A complete generateContent answer: each candidate's text parts."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.edited = False

    def _edited(self) -> None:
        self.edited = True

    def segments(self) -> list[Segment]:
        return [
            s
            for candidate in dicts(self.body.get("candidates"))
            for s in _answer_parts(candidate, self._edited)
        ]

    def drop_logprobs(self) -> None:
        for candidate in dicts(self.body.get("candidates")):
            for key in ("logprobsResult", "avgLogprobs"):
                if key in candidate:
                    del candidate[key]
                    self.edited = True


def _answer_parts(candidate: dict[str, Any], edited: Any) -> list[Segment]:
    content = candidate.get("content")
    return [
        s
        for part in dicts(content.get("parts") if isinstance(content, dict) else None)
        if isinstance(part.get("text"), str) and not part.get("thought")
        for s in text_segments(part, "text", "assistant", "text", edited)
    ]


def _stream_error(data: dict[str, Any]) -> GatewayError:
    error = data.get("error")
    fields = error if isinstance(error, dict) else {}
    code = fields.get("code")
    message = fields.get("message")
    return GatewayError(
        code if isinstance(code, int) and 400 <= code <= 599 else 502,
        message if isinstance(message, str) and message else "the backend's stream failed",
        "server_error",
        "upstream_stream_error",
    )


class GenerateStream(SSEStream):
    """A same-API streamGenerateContent (alt=sse) stream."""

    markers = (b'"finishReason"', b'"error"')

    def __init__(self, filters: list[TextFilter], error_body: Any) -> None:
        super().__init__(filters, rewrite=False)
        self._error_body = error_body

    def scan(self, event: bytes) -> None:
        self._note(event_json(event))

    def _note(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if "error" in data and not data.get("candidates"):
            self.failed(_stream_error(data))
            return
        usage = gemini_usage(data.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        if any(c.get("finishReason") for c in dicts(data.get("candidates"))):
            self.complete = True

    async def rewrite(self, event: bytes) -> list[bytes]:
        data = event_json(event)
        if not isinstance(data, dict):
            return [event + b"\n\n"]
        self._note(data)
        for position, candidate in enumerate(dicts(data.get("candidates"))):
            await self._candidate(position, candidate)
        return [frame(data)]

    async def _candidate(self, position: int, candidate: dict[str, Any]) -> None:
        index = candidate.get("index", position)
        channel = str(index if isinstance(index, int) else position)
        final = bool(candidate.get("finishReason"))
        parts = [p for p in _answer_parts(candidate, lambda: None)]
        for number, segment in enumerate(parts):
            last = final and number == len(parts) - 1
            segment.set(await self._push(channel, segment.text, last))
        if final and not parts:
            held = await self._push(channel, "", True)
            if held:
                content = candidate.setdefault("content", {"role": "model", "parts": []})
                content.setdefault("parts", []).append({"text": held})

    async def _push(self, channel: str, text: str, final: bool) -> str:
        for text_filter in self.filters:
            text = await text_filter.push(channel, text, final)
        return text

    def error_event(self, error: GatewayError) -> bytes:
        return frame(self._error_body(error))


class GenerateWire(WireSupport):
    name = GEMINI_GENERATE
    forward_headers = FORWARD_HEADERS

    def __init__(self, error_body: Any) -> None:
        self._error_body = error_body

    def view(self, call: Call) -> GenerateView:
        return GenerateView(call)

    def usage(self, body: Any) -> Usage | None:
        return gemini_usage(body.get("usageMetadata")) if isinstance(body, dict) else None

    def response_view(self, body: dict[str, Any]) -> GenerateResponseView:
        return GenerateResponseView(body)

    def native_stream(
        self, ctx: RequestContext, filters: list[TextFilter], strip_usage: bool
    ) -> GenerateStream:
        return GenerateStream(filters, self._error_body)


class CountTokensWire(GenerateWire):
    name = GEMINI_COUNT_TOKENS

    def usage(self, body: Any) -> Usage | None:
        return None

    def response_view(self, body: dict[str, Any]) -> None:  # type: ignore[override]
        return None


class OtherWire(CountTokensWire):
    name = PASSTHROUGH
    filterable_streams = False
    json_answers = False
