"""Built-in plugin `gemini_api`: Google's Gemini API (generativelanguage) as a client-facing API.

`POST /{v1,v1beta,v1alpha}/models/{model}:generateContent` and `:streamGenerateContent` (always
answered as `alt=sse`, the form every Google SDK asks for) are decoded into the canonical
(OpenAI chat-completions) form, so they reach any backend and every policy; answers, streams
and errors go back in Gemini's wire shape. The model comes from the URL path. Field names are
read in either of the spellings Google accepts (`maxOutputTokens` or `max_output_tokens`).

What does not translate: `safetySettings`, `topK`, `thinkingConfig`, logprobs and speech
settings are accepted and not forwarded; `cachedContent`, built-in tools (Google Search, code
execution, ...) and non-text response modalities are refused with a 400, since no backend
behind the canonical form could honour them. Pure translation plus the `IngressAPI`; no I/O.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from modelway import hookimpl
from modelway.canonical import CanonicalRequest, CanonicalResponse, Operation
from modelway.context import RequestContext
from modelway.errors import GatewayError, bad_request
from modelway.extension import Endpoint, IngressAPI
from modelway.plugins.ingress.openai import parse_json_object
from modelway.providerkit import dumps

JSON = dict[str, Any]
API = "gemini"
GENERATE = "generateContent"
STREAM = "streamGenerateContent"
_PATH = re.compile(
    r"/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)"
)
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}
_MODES_WITHOUT_NAMES = {"NONE": "none", "AUTO": "auto", "VALIDATED": "auto"}
_UNSUPPORTED_PARTS = ("executableCode", "codeExecutionResult", "toolCall", "toolResponse")
_DROPPED_SCHEMA_KEYS = frozenset({"propertyOrdering", "example"})
_NUMBER = (int, float)
_GENERATION_FIELDS: tuple[tuple[str, str, type | tuple[type, ...]], ...] = (
    ("temperature", "temperature", _NUMBER),
    ("topP", "top_p", _NUMBER),
    ("candidateCount", "n", int),
    ("maxOutputTokens", "max_tokens", int),
    ("presencePenalty", "presence_penalty", _NUMBER),
    ("frequencyPenalty", "frequency_penalty", _NUMBER),
    ("seed", "seed", int),
)
_KIND_NAMES: dict[type | tuple[type, ...], str] = {_NUMBER: "a number", int: "an integer"}


@dataclass(frozen=True)
class GeminiEndpoint(Endpoint):
    """A generateContent call: the model and streaming come from the URL, not the body."""

    model: str = ""
    stream: bool = False


def camel(name: str) -> str:
    """`max_output_tokens` -> `maxOutputTokens` (Google accepts both spellings)."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def get(obj: Any, name: str) -> Any:
    """Field `name` (camelCase) of a JSON object, also under its snake_case spelling."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(snake(name))


@functools.cache
def snake(name: str) -> str:
    """`maxOutputTokens` -> `max_output_tokens`."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _object(value: Any, where: str) -> JSON:
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be an object", param=where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list", param=where)
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{where} must be a non-empty string", param=where)
    return value


# --------------------------------------------------------------------------- requests


@dataclass
class _Calls:
    """Function calls of the conversation so far, so responses find the call they answer.

    Gemini pairs a `functionResponse` with its `functionCall` by id when the client gives
    one, else by name in order; OpenAI needs an id on both, so one is made when missing.
    """

    made: int = 0
    open: list[tuple[str, str]] = field(default_factory=list)

    def call_id(self, given: Any) -> str:
        self.made += 1
        return given if isinstance(given, str) and given else f"call_{self.made}"

    def answer(self, given: Any, name: str, where: str) -> str:
        found = self._take(lambda call_id, _: call_id == given) or self._take(
            lambda _, call_name: call_name == name
        )
        if found is not None:
            return found
        if isinstance(given, str) and given:
            return given
        raise bad_request(
            f"{where}: functionResponse '{name}' answers no functionCall of the previous turn",
            param=where,
        )

    def _take(self, wanted: Callable[[str, str], bool]) -> str | None:
        for position, (call_id, call_name) in enumerate(self.open):
            if wanted(call_id, call_name):
                del self.open[position]
                return call_id
        return None


def to_openai_request(data: JSON, model: str, stream: bool) -> JSON:
    """The chat-completions body for a generateContent request body."""
    _refuse_untranslatable(data)
    calls = _Calls()
    messages = _system(get(data, "systemInstruction"))
    contents = _list(get(data, "contents"), "contents")
    if not contents:
        raise bad_request("contents must hold at least one content", param="contents")
    for index, content in enumerate(contents):
        messages.extend(_content_messages(content, f"contents[{index}]", calls))
    body: JSON = {"model": model, "messages": messages}
    body.update(generation_params(get(data, "generationConfig")))
    tools = openai_tools(get(data, "tools"))
    if tools:
        body["tools"] = tools
        body.update(tool_choice(get(data, "toolConfig")))
    if stream:
        body["stream"] = True
    return body


def _refuse_untranslatable(data: JSON) -> None:
    if get(data, "cachedContent"):
        raise bad_request(
            "cachedContent cannot be used through this gateway: send the content itself",
            param="cachedContent",
        )


def _system(instruction: Any) -> list[JSON]:
    if instruction is None:
        return []
    if isinstance(instruction, str):  # the SDKs accept a bare string; so does this gateway
        return [{"role": "system", "content": instruction}] if instruction else []
    parts = _list(get(_object(instruction, "systemInstruction"), "parts"), "systemInstruction")
    texts = [_text_only(part, f"systemInstruction.parts[{i}]") for i, part in enumerate(parts)]
    texts = [text for text in texts if text]
    if not texts:
        return []
    content: str | list[JSON] = texts[0]
    if len(texts) > 1:
        content = [{"type": "text", "text": text} for text in texts]
    return [{"role": "system", "content": content}]


def _text_only(part: Any, where: str) -> str:
    text = get(_object(part, where), "text")
    if not isinstance(text, str):
        raise bad_request(f"{where}: only text parts are allowed here", param=where)
    return text


def _content_messages(content: Any, where: str, calls: _Calls) -> list[JSON]:
    content = _object(content, where)
    role = get(content, "role") or "user"
    parts = [
        _object(p, f"{where}.parts[{i}]") for i, p in enumerate(_list(content.get("parts"), where))
    ]
    for number, part in enumerate(parts):
        for name in _UNSUPPORTED_PARTS:
            if get(part, name) is not None:
                raise bad_request(
                    f"{where}.parts[{number}]: {name} parts cannot be translated",
                    param=f"{where}.parts[{number}]",
                )
    if role == "model":
        message = _model_message(parts, where, calls)
        return [message] if message else []
    if role in ("user", "function"):
        return _user_messages(parts, where, calls)
    raise bad_request(
        f"{where}.role must be 'user' or 'model', not '{role}'", param=f"{where}.role"
    )


def _model_message(parts: list[JSON], where: str, calls: _Calls) -> JSON | None:
    texts: list[str] = []
    tool_calls: list[JSON] = []
    calls.open = []
    for number, part in enumerate(parts):
        if get(part, "thought") is True:
            continue
        text = get(part, "text")
        call = get(part, "functionCall")
        if isinstance(text, str):
            texts.append(text)
        elif call is not None:
            tool_calls.append(_tool_call(part, call, f"{where}.parts[{number}]", calls))
        elif get(part, "thoughtSignature") is None:
            raise bad_request(
                f"{where}.parts[{number}]: only text and functionCall parts can be model turns",
                param=f"{where}.parts[{number}]",
            )
    text = "".join(texts)
    if not text and not tool_calls:
        return None
    message: JSON = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_call(part: JSON, call: Any, where: str, calls: _Calls) -> JSON:
    call = _object(call, f"{where}.functionCall")
    name = _string(get(call, "name"), f"{where}.functionCall.name")
    args = get(call, "args")
    arguments = dumps(_object(args, f"{where}.functionCall.args") if args is not None else {})
    call_id = calls.call_id(get(call, "id"))
    calls.open.append((call_id, name))
    out: JSON = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments.decode()},
    }
    signature = get(part, "thoughtSignature")
    if isinstance(signature, str) and signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _user_messages(parts: list[JSON], where: str, calls: _Calls) -> list[JSON]:
    """Tool results first (OpenAI wants them right after the call), then the user's parts."""
    tools: list[JSON] = []
    content: list[JSON] = []
    for number, part in enumerate(parts):
        here = f"{where}.parts[{number}]"
        response = get(part, "functionResponse")
        if response is not None:
            tools.append(_tool_message(_object(response, f"{here}.functionResponse"), here, calls))
        elif get(part, "thought") is not True:
            converted = user_part(part, here)
            if converted is not None:
                content.append(converted)
    if content:
        tools.append({"role": "user", "content": _parts_content(content)})
    return tools


def _tool_message(response: JSON, where: str, calls: _Calls) -> JSON:
    name = _string(get(response, "name"), f"{where}.functionResponse.name")
    call_id = calls.answer(get(response, "id"), name, where)
    result = get(response, "response")
    text = dumps(result if result is not None else {}).decode()
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _parts_content(parts: list[JSON]) -> str | list[JSON]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def user_part(part: JSON, where: str) -> JSON | None:
    """A user part as an OpenAI content part (None for parts that carry nothing)."""
    text = get(part, "text")
    if isinstance(text, str):
        return {"type": "text", "text": text} if text else None
    inline = get(part, "inlineData")
    if inline is not None:
        return _inline_part(_object(inline, f"{where}.inlineData"), where)
    file_data = get(part, "fileData")
    if file_data is not None:
        return _file_part(_object(file_data, f"{where}.fileData"), where)
    if get(part, "thoughtSignature") is not None or get(part, "videoMetadata") is not None:
        return None
    raise bad_request(f"{where}: this kind of part cannot be translated", param=where)


def _inline_part(inline: JSON, where: str) -> JSON:
    mime = _string(get(inline, "mimeType"), f"{where}.inlineData.mimeType").lower()
    data = _string(get(inline, "data"), f"{where}.inlineData.data")
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    if mime in _AUDIO_FORMATS:
        return {
            "type": "input_audio",
            "input_audio": {"data": data, "format": _AUDIO_FORMATS[mime]},
        }
    extension = mimetypes.guess_extension(mime) or ".bin"
    file = {"filename": f"file{extension}", "file_data": f"data:{mime};base64,{data}"}
    return {"type": "file", "file": file}


def _file_part(file_data: JSON, where: str) -> JSON:
    uri = _string(get(file_data, "fileUri"), f"{where}.fileData.fileUri")
    mime = get(file_data, "mimeType") or mimetypes.guess_type(uri.split("?", 1)[0])[0] or ""
    if not str(mime).startswith("image/"):
        raise bad_request(
            f"{where}.fileData: only images can be sent by URI through this gateway "
            f"(got '{mime or 'unknown type'}'); send other files as inlineData",
            param=f"{where}.fileData",
        )
    return {"type": "image_url", "image_url": {"url": uri}}


def generation_params(config: Any) -> JSON:
    """OpenAI sampling, length, stop and format parameters from `generationConfig`."""
    if config is None:
        return {}
    config = _object(config, "generationConfig")
    out: JSON = {}
    for source, target, kind in _GENERATION_FIELDS:
        value = get(config, source)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            where = f"generationConfig.{source}"
            raise bad_request(f"{where} must be {_KIND_NAMES[kind]}", param=where)
        out[target] = value
    stop = get(config, "stopSequences")
    if stop:
        where = "generationConfig.stopSequences"
        stops = [stop] if isinstance(stop, str) else _list(stop, where)
        if not all(isinstance(s, str) for s in stops):
            raise bad_request(f"{where} must be a list of strings", param=where)
        out["stop"] = stops
    out.update(response_format(config))
    _refuse_modalities(get(config, "responseModalities"))
    return out


def response_format(config: JSON) -> JSON:
    """`response_format` for `responseMimeType: application/json` and its schema."""
    if get(config, "responseMimeType") != "application/json":
        return {}
    schema = get(config, "responseJsonSchema")
    if schema is None:
        schema = get(config, "_responseJsonSchema")
    if schema is None and isinstance(get(config, "responseSchema"), dict):
        schema = json_schema(get(config, "responseSchema"))
    if not isinstance(schema, dict):
        return {"response_format": {"type": "json_object"}}
    spec = {"name": "response", "schema": schema}
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def _refuse_modalities(modalities: Any) -> None:
    other = [m for m in modalities or [] if str(m).upper() != "TEXT"]
    if other:
        raise bad_request(
            f"responseModalities {other} cannot be produced through this gateway (text only)",
            param="generationConfig.responseModalities",
        )


def json_schema(schema: Any) -> Any:
    """A Gemini `Schema` (an OpenAPI 3.0 subset: `type: OBJECT`, `nullable`) as JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: JSON = {}
    for key, value in schema.items():
        name = camel(key)
        if name in _DROPPED_SCHEMA_KEYS or name == "nullable":
            continue
        if name == "type":
            if isinstance(value, str) and value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif name == "properties" and isinstance(value, dict):
            out["properties"] = {prop: json_schema(sub) for prop, sub in value.items()}
        elif name in ("items", "not"):
            out[name] = json_schema(value)
        elif name == "anyOf" and isinstance(value, list):
            out["anyOf"] = [json_schema(sub) for sub in value]
        else:
            out[name] = value
    if get(schema, "nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def openai_tools(tools: Any) -> list[JSON]:
    """OpenAI function tools for every `functionDeclarations` entry; other tools are refused."""
    out: list[JSON] = []
    for index, tool in enumerate(_list(tools, "tools")):
        tool = _object(tool, f"tools[{index}]")
        for key in tool:
            if camel(key) != "functionDeclarations":
                raise bad_request(
                    f"tools[{index}].{camel(key)} is not supported through this gateway: "
                    "only functionDeclarations are",
                    param=f"tools[{index}].{camel(key)}",
                )
        declarations = _list(get(tool, "functionDeclarations"), f"tools[{index}]")
        for number, declaration in enumerate(declarations):
            where = f"tools[{index}].functionDeclarations[{number}]"
            out.append(_function_tool(_object(declaration, where), where))
    return out


def _function_tool(declaration: JSON, where: str) -> JSON:
    function: JSON = {"name": _string(get(declaration, "name"), f"{where}.name")}
    if isinstance(get(declaration, "description"), str):
        function["description"] = get(declaration, "description")
    parameters = get(declaration, "parametersJsonSchema")
    if parameters is None and get(declaration, "parameters") is not None:
        parameters = json_schema(get(declaration, "parameters"))
    if isinstance(parameters, dict):
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def tool_choice(config: Any) -> JSON:
    """`tool_choice` from `toolConfig.functionCallingConfig` (mode and allowed names)."""
    calling = get(config, "functionCallingConfig")
    if not isinstance(calling, dict):
        return {}
    mode = str(get(calling, "mode") or "AUTO").upper()
    names = [n for n in get(calling, "allowedFunctionNames") or [] if isinstance(n, str)]
    if mode != "ANY":
        return {"tool_choice": _MODES_WITHOUT_NAMES.get(mode, "auto")}
    if not names:
        return {"tool_choice": "required"}
    if len(names) == 1:
        return {"tool_choice": {"type": "function", "function": {"name": names[0]}}}
    allowed = [{"type": "function", "function": {"name": name}} for name in names]
    return {
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "required", "tools": allowed},
        }
    }


# --------------------------------------------------------------------------- answers

FINISH_REASONS = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def finish_reason(reason: Any) -> str:
    """A canonical finish_reason as Gemini's `finishReason`."""
    if reason is None:
        return "STOP"
    return FINISH_REASONS.get(reason, "OTHER") if isinstance(reason, str) else "OTHER"


def _int(value: Any) -> int:
    return _int_or(value, 0)


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def usage_metadata(usage: Any) -> JSON | None:
    """OpenAI usage as `usageMetadata`; reasoning tokens are Gemini's thoughts."""
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details")
    thoughts = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
    cached_details = usage.get("prompt_tokens_details")
    cached = _int(cached_details.get("cached_tokens")) if isinstance(cached_details, dict) else 0
    out: JSON = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(completion - thoughts, 0),
        "totalTokenCount": prompt + completion,
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(p.get("text", "") for p in value if isinstance(p, dict))
    return value if isinstance(value, str) else ""


def function_call_part(call: Any) -> JSON | None:
    """An OpenAI tool call as a `functionCall` part (its id and thought signature kept)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return None
    args = _arguments(function.get("arguments"))
    out: JSON = {"name": function.get("name") or "", "args": args}
    if isinstance(call.get("id"), str) and call["id"]:
        out = {"id": call["id"], **out}
    part: JSON = {"functionCall": out}
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str):
        part["thoughtSignature"] = signature
    return part


def _arguments(raw: Any) -> JSON:
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def message_parts(message: Any) -> list[JSON]:
    if not isinstance(message, dict):
        return []
    parts: list[JSON] = []
    if text := _text(message.get("content")) or _text(message.get("refusal")):
        parts.append({"text": text})
    for call in message.get("tool_calls") or []:
        part = function_call_part(call)
        if part is not None:
            parts.append(part)
    return parts


def candidate(choice: Any, position: int) -> JSON:
    choice = choice if isinstance(choice, dict) else {}
    index = choice.get("index")
    out: JSON = {}
    parts = message_parts(choice.get("message"))
    if parts:
        out["content"] = {"role": "model", "parts": parts}
    out["finishReason"] = finish_reason(choice.get("finish_reason"))
    out["index"] = index if isinstance(index, int) else position
    return out


def response_id(upstream_id: Any) -> str:
    """The answer's id without OpenAI's `chatcmpl-` prefix (Gemini answers carry the bare id)."""
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id.removeprefix("chatcmpl-")
    return uuid.uuid4().hex


def to_gemini_response(body: JSON, model: str) -> JSON:
    """A GenerateContentResponse for a canonical `chat.completion`."""
    choices = body.get("choices")
    choices = choices if isinstance(choices, list) else []
    out: JSON = {"candidates": [candidate(c, i) for i, c in enumerate(choices)]}
    usage = usage_metadata(body.get("usage"))
    if usage is not None:
        out["usageMetadata"] = usage
    upstream_model = body.get("model")
    out["modelVersion"] = upstream_model if isinstance(upstream_model, str) else model
    out["responseId"] = response_id(body.get("id"))
    return out


# --------------------------------------------------------------------------- streams


def sse(event: JSON) -> bytes:
    """One Gemini stream event (`alt=sse`), CRLF line ends as Google sends them."""
    return b"data: " + dumps(event) + b"\r\n\r\n"


@dataclass
class _Choice:
    """What one streamed choice has pending: tool calls (sent whole) and its finish."""

    calls: dict[int, JSON] = field(default_factory=dict)
    finish: str | None = None


class GeminiStreamEncoder:
    """The ingress `StreamEncoder`: canonical chunks to `streamGenerateContent?alt=sse` events.

    Text goes out as soon as it arrives. Gemini sends a function call whole, so tool-call
    deltas are gathered and sent with the choice's finish; the finishing event waits for the
    usage chunk that follows the finish (or the end) so it carries `usageMetadata`, as
    Google's last event does.
    """

    content_type = "text/event-stream"

    def __init__(self, model: str) -> None:
        self.model = model
        self.response_id: str | None = None
        self.choices: dict[int, _Choice] = {}
        self.usage: JSON | None = None
        self.finished = False

    def encode(self, chunk: dict[str, Any]) -> bytes:
        self._identify(chunk)
        out = b""
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                out += self._choice(choice)
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_metadata(chunk["usage"])
            if any(c.finish for c in self.choices.values()):
                out += self._final()
        return out

    def end(self) -> bytes:
        return b"" if self.finished else self._final()

    def error(self, error: GatewayError) -> bytes:
        return sse(error_object(error))

    def _identify(self, chunk: JSON) -> None:
        if self.response_id is None and isinstance(chunk.get("id"), str):
            self.response_id = response_id(chunk["id"])
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]

    def _choice(self, choice: JSON) -> bytes:
        index = _int_or(choice.get("index"), 0)
        state = self.choices.setdefault(index, _Choice())
        delta = _dict(choice.get("delta"))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                _gather(state.calls, call)
        if choice.get("finish_reason"):
            state.finish = finish_reason(choice["finish_reason"])
        text = _text(delta.get("content")) or _text(delta.get("refusal"))
        if not text:
            return b""
        return sse(self._event([{"content": _model_content([{"text": text}]), "index": index}]))

    def _final(self) -> bytes:
        self.finished = True
        choices = self.choices or {0: _Choice()}
        candidates = [_final_candidate(index, state) for index, state in sorted(choices.items())]
        event = self._event(candidates)
        if self.usage is not None:
            event["usageMetadata"] = self.usage
        return sse(event)

    def _event(self, candidates: list[JSON]) -> JSON:
        return {
            "candidates": candidates,
            "modelVersion": self.model,
            "responseId": self.response_id or "",
        }


def _gather(calls: dict[int, JSON], delta: JSON) -> None:
    """Merge one tool-call delta into the call it continues (by its index)."""
    number = _int_or(delta.get("index"), len(calls))
    call = calls.setdefault(number, {"id": None, "function": {"name": "", "arguments": ""}})
    if isinstance(delta.get("id"), str) and delta["id"]:
        call["id"] = delta["id"]
    if isinstance(delta.get("extra_content"), dict):
        call["extra_content"] = delta["extra_content"]
    function = _dict(delta.get("function"))
    for key in ("name", "arguments"):
        if isinstance(function.get(key), str):
            call["function"][key] += function[key]


def _model_content(parts: list[JSON]) -> JSON:
    return {"role": "model", "parts": parts}


def _final_candidate(index: int, state: _Choice) -> JSON:
    parts = [function_call_part(state.calls[n]) for n in sorted(state.calls)]
    out: JSON = {"content": _model_content([p for p in parts if p is not None])}
    out["finishReason"] = state.finish or "STOP"
    out["index"] = index
    return out


# --------------------------------------------------------------------------- errors

GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_KNOWN_STATUSES = frozenset(GOOGLE_STATUSES.values()) | {
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "ALREADY_EXISTS",
    "DATA_LOSS",
    "UNKNOWN",
}


def google_status(error: GatewayError) -> str:
    """The google.rpc status name: the error's own when it is one (from a Gemini backend)."""
    own = (error.code or "").upper()
    if own in _KNOWN_STATUSES:
        return own
    if error.status in GOOGLE_STATUSES:
        return GOOGLE_STATUSES[error.status]
    return "INTERNAL" if error.status >= 500 else "INVALID_ARGUMENT"


def error_object(error: GatewayError) -> JSON:
    """Google's error shape; the gateway's own code (if any) as an ErrorInfo reason."""
    status = google_status(error)
    body: JSON = {"code": error.status, "message": error.message, "status": status}
    if error.code and error.code.upper() != status:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": error.code.upper(),
                "domain": "modelway",
            }
        ]
    return {"error": body}


# --------------------------------------------------------------------------- the API


def _model(ctx: RequestContext) -> str:
    return ctx.request.model if ctx.request else ""


class GeminiAPI(IngressAPI):
    name = API
    paths = (
        "/v1beta/models/{model}:generateContent",
        "/v1beta/models/{model}:streamGenerateContent",
    )

    def match(self, method: str, path: str) -> Endpoint | None:
        found = _PATH.fullmatch(path)
        if method != "POST" or found is None or found["method"] not in (GENERATE, STREAM):
            return None
        stream = found["method"] == STREAM
        model = unquote(found["model"])
        return GeminiEndpoint(API, Operation.CHAT, found["method"], model=model, stream=stream)

    def claims(self, path: str) -> bool:
        found = _PATH.fullmatch(path)
        return found is not None and found["method"] in (GENERATE, STREAM)

    def decode(
        self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]
    ) -> CanonicalRequest:
        assert isinstance(endpoint, GeminiEndpoint)
        data = parse_json_object(body, headers)
        request = to_openai_request(data, endpoint.model, endpoint.stream)
        # Gemini answers always carry usageMetadata, so the gateway's usage chunk is kept.
        return CanonicalRequest(Operation.CHAT, endpoint.model, request, endpoint.stream, True)

    def encode_response(self, ctx: RequestContext, response: CanonicalResponse) -> bytes:
        return dumps(to_gemini_response(response.body, _model(ctx)))

    def stream_encoder(self, ctx: RequestContext) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(_model(ctx))

    def error_body(self, error: GatewayError) -> bytes:
        return dumps(error_object(error))


@hookimpl
def modelway_ingress_apis() -> list[IngressAPI]:
    return [GeminiAPI()]
