"""Pure translation between the canonical form (OpenAI chat completions) and Gemini's
`generateContent` wire format, shared by the `gemini` and `vertex` providers.

No I/O: request bodies, answers, stream events and error bodies in; dicts, chunks or
GatewayErrors out. Field names follow the Gemini API reference (generativelanguage v1beta and
Vertex AI v1, as the official google-genai SDK writes them). A Gemini thought signature on a
function call travels to the client as `extra_content.google.thought_signature` on the tool
call (the convention of Google's own OpenAI-compatible endpoint) and back the same way.
"""

from __future__ import annotations

import base64
import json
import math
import mimetypes
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from modelway.canonical import CanonicalResponse, Usage
from modelway.errors import GatewayError, bad_request, upstream_error
from modelway.sse import SSEDecoder, SSEEvent

JSON = dict[str, Any]

_CONFIG_FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("n", "candidateCount"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
    ("seed", "seed"),
)
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_AUTH_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED", "CREDENTIALS_MISSING"}
)
_AUTH_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
_DATA_URL = re.compile(
    r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*?)(?P<b64>;base64)?,(?P<data>.*)", re.S
)
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def model_path(model: str) -> str:
    """The model as one URL path segment (`models/` prefix dropped, `/` escaped)."""
    return quote(model.removeprefix("models/"), safe="@-._~")


def method_name(stream: bool) -> str:
    """The generateContent method and query for a (streamed) request."""
    return "streamGenerateContent?alt=sse" if stream else "generateContent"


# --------------------------------------------------------------------------- requests


def to_gemini_request(body: JSON) -> JSON:
    """The generateContent body for an OpenAI chat-completions request body."""
    system, contents = _contents(body.get("messages") or [])
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = generation_config(body)
    if config:
        out["generationConfig"] = config
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    tool_config = _tool_config(body.get("tool_choice"))
    if tool_config:
        out["toolConfig"] = tool_config
    return out


def generation_config(body: JSON) -> JSON:
    """`generationConfig` from the OpenAI sampling, length, stop and format parameters."""
    config: JSON = {}
    for source, target in _CONFIG_FIELDS:
        if body.get(source) is not None:
            config[target] = body[source]
    limit = body.get("max_completion_tokens")
    limit = body.get("max_tokens") if limit is None else limit
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    config.update(_response_format(body.get("response_format")))
    return config


def _response_format(value: Any) -> JSON:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind != "json_schema":
        return {}
    out: JSON = {"responseMimeType": "application/json"}
    spec = value.get("json_schema")
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        out["responseJsonSchema"] = spec["schema"]
    return out


def _contents(messages: list[Any]) -> tuple[list[JSON], list[JSON]]:
    """System parts, and the conversation as alternating user/model contents."""
    system: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] is not an object", param=f"messages[{index}]")
        if message.get("role") in ("system", "developer"):
            system.extend(_text_parts(message.get("content"), f"messages[{index}]"))
            continue
        role, parts = _message_parts(message, index, names)
        _append(contents, role, parts)
    return system, contents


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _message_parts(message: JSON, index: int, names: dict[str, str]) -> tuple[str, list[JSON]]:
    role = message.get("role")
    where = f"messages[{index}]"
    if role == "user":
        return "user", _user_parts(message.get("content"), where)
    if role == "assistant":
        return "model", _assistant_parts(message, where, names)
    if role in ("tool", "function"):
        return "user", [_function_response(message, where, names)]
    raise bad_request(f"{where}: role '{role}' is not supported", param=f"{where}.role")


def _text_parts(content: Any, where: str) -> list[JSON]:
    """Text-only content (system and assistant messages): text and refusal parts."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for number, part in enumerate(content or []):
        kind = part.get("type") if isinstance(part, dict) else None
        text = part.get(kind) if kind in ("text", "refusal") else None
        if not isinstance(text, str):
            raise bad_request(
                f"{where}.content[{number}]: only text parts are allowed here",
                param=f"{where}.content[{number}]",
            )
        if text:
            parts.append({"text": text})
    return parts


def _user_parts(content: Any, where: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for number, part in enumerate(content or []):
        converted = _content_part(part, f"{where}.content[{number}]")
        if converted is not None:
            parts.append(converted)
    return parts


def _content_part(part: Any, where: str) -> JSON | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"text": part["text"]} if part["text"] else None
    if kind == "image_url":
        return _image_part(part.get("image_url"), where)
    if kind == "input_audio":
        return _audio_part(part.get("input_audio"), where)
    if kind == "file":
        return _file_part(part.get("file"), where)
    raise bad_request(f"{where}: content part type '{kind}' is not supported", param=where)


def _image_part(image: Any, where: str) -> JSON:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise bad_request(f"{where}.image_url.url is missing", param=f"{where}.image_url")
    return media_part(url, where)


def media_part(url: str, where: str) -> JSON:
    """A data URL as `inlineData`; any other URL (http, gs, a Files API URI) as `fileData`."""
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, where)
        return {"inlineData": {"mimeType": media_type, "data": data}}
    file_data: JSON = {"fileUri": url}
    guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
    if guessed:
        file_data = {"mimeType": guessed, **file_data}
    return {"fileData": file_data}


def parse_data_url(url: str, where: str) -> tuple[str, str]:
    """The media type and base64 payload of an RFC 2397 data URL."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise bad_request(f"{where}: malformed data URL", param=where)
    data = match["data"]
    if not match["b64"]:
        data = base64.b64encode(unquote_to_bytes(data)).decode()
    return match["mime"] or "text/plain", data


def _audio_part(audio: Any, where: str) -> JSON:
    if not isinstance(audio, dict):
        audio = {}
    data = audio.get("data")
    mime = _AUDIO_TYPES.get(str(audio.get("format")))
    if not isinstance(data, str) or mime is None:
        raise bad_request(f"{where}.input_audio needs data and a format of wav or mp3", param=where)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _file_part(file: Any, where: str) -> JSON:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data:
        raise bad_request(f"{where}.file: only inline file_data is supported", param=where)
    if data.startswith("data:"):
        return media_part(data, where)
    mime = mimetypes.guess_type(str(file.get("filename") or ""))[0] or "application/pdf"
    return {"inlineData": {"mimeType": mime, "data": data}}


def _assistant_parts(message: JSON, where: str, names: dict[str, str]) -> list[JSON]:
    parts = _text_parts(message.get("content"), where)
    calls = message.get("tool_calls") or []
    if isinstance(message.get("function_call"), dict):
        calls = [*calls, {"function": message["function_call"]}]
    for number, call in enumerate(calls):
        parts.append(_function_call_part(call, f"{where}.tool_calls[{number}]", names))
    return parts


def _function_call_part(call: Any, where: str, names: dict[str, str]) -> JSON:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad_request(f"{where}.function.name is missing", param=where)
    name = function["name"]
    if isinstance(call.get("id"), str):
        names[call["id"]] = name
    part: JSON = {
        "functionCall": {"name": name, "args": _arguments(function.get("arguments"), where)}
    }
    signature = _signature(call)
    if signature:
        part["thoughtSignature"] = signature
    return part


def _signature(call: JSON) -> str | None:
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) else None


def _arguments(raw: Any, where: str) -> JSON:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        raise bad_request(f"{where}.function.arguments is not a JSON object", param=where)
    return value


def _function_response(message: JSON, where: str, names: dict[str, str]) -> JSON:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(
            f"{where}: tool_call_id '{call_id}' matches no earlier assistant tool call",
            param=f"{where}.tool_call_id",
        )
    response = _response_object(message.get("content"))
    return {"functionResponse": {"name": name, "response": response}}


def _response_object(content: Any) -> JSON:
    """A tool result as the object Gemini wants: a JSON object as is, else `{"output": ...}`."""
    if isinstance(content, str):
        text = content
    else:
        text = "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {"output": value}


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _tools(tools: Any) -> list[JSON]:
    if not tools:
        return []
    return [{"functionDeclarations": [_declaration(t, i) for i, t in enumerate(tools)]}]


def _declaration(tool: Any, index: int) -> JSON:
    is_function = isinstance(tool, dict) and tool.get("type") == "function"
    function = tool.get("function") if is_function else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad_request(
            f"tools[{index}]: only function tools are supported by this backend",
            param=f"tools[{index}]",
        )
    out: JSON = {"name": function["name"]}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    if isinstance(function.get("parameters"), dict):
        out["parametersJsonSchema"] = function["parameters"]
    return out


def _tool_config(choice: Any) -> JSON:
    if choice is None:
        return {}
    if isinstance(choice, str) and choice in _TOOL_MODES:
        return {"functionCallingConfig": {"mode": _TOOL_MODES[choice]}}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("function"), dict):
        names = [choice["function"].get("name")]
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}
    if kind == "allowed_tools" and isinstance(choice.get("allowed_tools"), dict):
        return _allowed_tools(choice["allowed_tools"])
    raise bad_request("tool_choice is not one this backend supports", param="tool_choice")


def _allowed_tools(allowed: JSON) -> JSON:
    if allowed.get("mode") != "required":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    tools = allowed.get("tools") or []
    names = [t["function"]["name"] for t in tools if isinstance(t.get("function"), dict)]
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What an answer needs that Gemini may not say: an id, the model name, the time."""

    fallback_id: str
    model: str
    created: int


def finish_reason(reason: Any, has_tool_calls: bool) -> str:
    """Gemini's finishReason as an OpenAI finish_reason."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if has_tool_calls else "stop"


def openai_usage(metadata: Any) -> JSON | None:
    """`usageMetadata` as an OpenAI usage object; thinking tokens count as completion."""
    if not isinstance(metadata, dict):
        return None
    prompt = _int(metadata.get("promptTokenCount")) + _int(metadata.get("toolUsePromptTokenCount"))
    thoughts = _int(metadata.get("thoughtsTokenCount"))
    completion = _int(metadata.get("candidatesTokenCount")) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _int(metadata.get("cachedContentTokenCount"))},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _key(data: JSON, meta: ResponseMeta) -> str:
    response_id = data.get("responseId")
    return response_id if isinstance(response_id, str) and response_id else meta.fallback_id


def _model(data: JSON, meta: ResponseMeta) -> str:
    version = data.get("modelVersion")
    return version if isinstance(version, str) and version else meta.model


def _index(candidate: JSON, position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _parts(candidate: JSON) -> list[JSON]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def tool_call(part: JSON, key: str, choice: int, number: int) -> JSON:
    """A `functionCall` part as an OpenAI tool call (an id is made when Gemini gives none)."""
    call = part["functionCall"]
    given = call.get("id")
    suffix = f"{number}" if choice == 0 else f"{choice}_{number}"
    out: JSON = {
        "id": given if isinstance(given, str) and given else f"call_{key}_{suffix}",
        "type": "function",
        "function": {
            "name": call.get("name") if isinstance(call.get("name"), str) else "",
            "arguments": dumps(call.get("args") or {}).decode(),
        },
    }
    if isinstance(part.get("thoughtSignature"), str):
        out["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return out


def _read_parts(parts: list[JSON], key: str, choice: int) -> tuple[str, list[JSON]]:
    texts: list[str] = []
    calls: list[JSON] = []
    for part in parts:
        if part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(part, key, choice, len(calls)))
    return "".join(texts), calls


def _choice(candidate: JSON, position: int, key: str) -> JSON:
    index = _index(candidate, position)
    text, calls = _read_parts(_parts(candidate), key, index)
    message: JSON = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    reason = finish_reason(candidate.get("finishReason"), bool(calls))
    return {"index": index, "message": message, "finish_reason": reason, "logprobs": None}


def _blocked(data: JSON) -> bool:
    feedback = data.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


def from_gemini_response(data: JSON, meta: ResponseMeta) -> JSON:
    """A GenerateContentResponse as an OpenAI chat.completion object."""
    key = _key(data, meta)
    candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
    choices = [_choice(c, i, key) for i, c in enumerate(candidates)]
    if not choices and not _blocked(data):
        raise upstream_error(
            502, "the backend's answer has no candidates", "upstream_invalid_response"
        )
    if not choices:
        message = {"role": "assistant", "content": None}
        choices = [
            {"index": 0, "message": message, "finish_reason": "content_filter", "logprobs": None}
        ]
    answer: JSON = {
        "id": f"chatcmpl-{key}",
        "object": "chat.completion",
        "created": meta.created,
        "model": _model(data, meta),
        "choices": choices,
    }
    usage = openai_usage(data.get("usageMetadata"))
    if usage is not None:
        answer["usage"] = usage
    return answer


def parse_gemini_answer(status: int, body: bytes, meta: ResponseMeta) -> CanonicalResponse:
    """A non-streamed generateContent answer (raw bytes) in canonical shape."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise upstream_error(
            502,
            "the backend answered with something that is not a JSON object",
            "upstream_invalid_response",
        )
    answer = from_gemini_response(data, meta)
    return CanonicalResponse(answer, Usage.from_openai(answer.get("usage")), status)


# --------------------------------------------------------------------------- streams


class GeminiStreamTranslator:
    """Gemini stream events (each a GenerateContentResponse) to canonical chunks.

    Emits, per choice, a role chunk first, then text and tool-call deltas as they arrive, a
    finish chunk; `end()` adds the usage chunk from the last `usageMetadata`.
    """

    def __init__(self, meta: ResponseMeta) -> None:
        self._meta = meta
        self._key = meta.fallback_id
        self._model = meta.model
        self._events = 0
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}
        self._usage: JSON | None = None

    def event(self, data: JSON) -> list[JSON]:
        if "error" in data:
            raise error_from_google(_error_status(data, 502), data)
        if not self._events:
            self._key, self._model = _key(data, self._meta), _model(data, self._meta)
        self._events += 1
        self._usage = openai_usage(data.get("usageMetadata")) or self._usage
        candidates = [c for c in data.get("candidates") or [] if isinstance(c, dict)]
        chunks: list[JSON] = []
        for position, candidate in enumerate(candidates):
            chunks.extend(self._candidate(candidate, _index(candidate, position)))
        if not candidates and _blocked(data):
            chunks.extend(self._start(0) + self._finish(0, "content_filter"))
        return chunks

    def end(self) -> list[JSON]:
        """The usage chunk; raises if the stream ended before every choice finished."""
        if not self._finished or self._started - self._finished:
            raise upstream_error(
                502,
                "the backend's stream ended before it was complete",
                "upstream_stream_truncated",
            )
        return [self._chunk([], self._usage)] if self._usage is not None else []

    def _candidate(self, candidate: JSON, index: int) -> list[JSON]:
        chunks = self._start(index)
        for part in _parts(candidate):
            chunks.extend(self._part(index, part))
        reason = candidate.get("finishReason")
        if reason:
            chunks.extend(self._finish(index, finish_reason(reason, index in self._calls)))
        return chunks

    def _part(self, index: int, part: JSON) -> list[JSON]:
        if part.get("thought") is True:
            return []
        text = part.get("text")
        if isinstance(text, str):
            return [self._delta(index, {"content": text})] if text else []
        if not isinstance(part.get("functionCall"), dict):
            return []
        number = self._calls.get(index, 0)
        self._calls[index] = number + 1
        call = tool_call(part, self._key, index, number)
        return [self._delta(index, {"tool_calls": [{"index": number, **call}]})]

    def _start(self, index: int) -> list[JSON]:
        if index in self._started:
            return []
        self._started.add(index)
        return [self._delta(index, {"role": "assistant", "content": ""})]

    def _finish(self, index: int, reason: str) -> list[JSON]:
        if index in self._finished:
            return []
        self._finished.add(index)
        choice = {"index": index, "delta": {}, "finish_reason": reason, "logprobs": None}
        return [self._chunk([choice])]

    def _delta(self, index: int, delta: JSON) -> JSON:
        return self._chunk(
            [{"index": index, "delta": delta, "finish_reason": None, "logprobs": None}]
        )

    def _chunk(self, choices: list[JSON], usage: JSON | None = None) -> JSON:
        chunk: JSON = {
            "id": f"chatcmpl-{self._key}",
            "object": "chat.completion.chunk",
            "created": self._meta.created,
            "model": self._model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk


class GeminiStreamDecoder:
    """`streamGenerateContent?alt=sse` bytes to canonical chunks (a `StreamDecoder`).

    A failure (an error event, an event that is not a JSON object, a stream that ends before
    its finish) becomes one in-order error chunk after the chunks before it; nothing follows.
    """

    def __init__(self, meta: ResponseMeta) -> None:
        self._sse = SSEDecoder()
        self._translator = GeminiStreamTranslator(meta)
        self._failed = False

    def feed(self, data: bytes) -> list[JSON]:
        return self._chunks(self._sse.feed(data), end=False)

    def close(self) -> list[JSON]:
        return self._chunks(self._sse.close(), end=True)

    def _chunks(self, events: list[SSEEvent], end: bool) -> list[JSON]:
        chunks: list[JSON] = []
        if self._failed:
            return chunks
        try:
            for event in events:
                chunks.extend(self._translator.event(_event_json(event)))
            if end:
                chunks.extend(self._translator.end())
        except GatewayError as error:
            self._failed = True
            chunks.append(error_chunk(error))
        return chunks


def error_chunk(error: GatewayError) -> JSON:
    """A stream failure as the in-order error chunk the stream pipeline reads (status kept)."""
    fields = {"message": error.message, "type": error.type, "code": error.code}
    return {"error": {**fields, "status": error.status}}


def _event_json(event: SSEEvent) -> JSON:
    try:
        data = json.loads(event.data)
    except ValueError:
        data = None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise upstream_error(
            502,
            "the backend's stream has an event that is not a JSON object",
            "upstream_invalid_stream",
        )
    return data


# --------------------------------------------------------------------------- errors


def _error_object(data: Any) -> JSON | None:
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _error_status(data: Any, default: int) -> int:
    error = _error_object(data) or {}
    code = error.get("code")
    return code if isinstance(code, int) and 400 <= code <= 599 else default


def _details(error: JSON) -> list[JSON]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def is_auth_failure(status: int, data: Any) -> bool:
    """Whether the backend rejected the credentials (Gemini says so with a 400 for a bad key)."""
    if status in (401, 403):
        return True
    error = _error_object(data) or {}
    if error.get("status") in _AUTH_STATUSES:
        return True
    return any(d.get("reason") in _AUTH_REASONS for d in _details(error))


def retry_delay(data: Any) -> str | None:
    """Seconds from a `google.rpc.RetryInfo` detail's `retryDelay` (e.g. "37s"), rounded up."""
    for detail in _details(_error_object(data) or {}):
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(math.ceil(float(delay[:-1])))
            except ValueError:
                return None
    return None


def error_from_google(status: int, data: Any) -> GatewayError:
    """A Google error body `{"error": {"code", "message", "status"}}` as a GatewayError.

    The HTTP status is kept; the google status (RESOURCE_EXHAUSTED, ...) becomes the code.
    """
    error = _error_object(data)
    if error is None:
        return upstream_error(status, f"the backend answered HTTP {status}")
    message = error.get("message")
    code = error.get("status") or error.get("type")
    result = GatewayError(
        status,
        message if isinstance(message, str) and message else f"the backend answered HTTP {status}",
        "server_error" if status >= 500 else "invalid_request_error",
        code.lower() if isinstance(code, str) and code else None,
    )
    delay = retry_delay(data)
    if delay is not None:
        result.headers["retry-after"] = delay
    return result


def loads_or_none(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
