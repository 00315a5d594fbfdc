"""Canonical (OpenAI chat-completions) requests as Gemini `generateContent` requests.

Pure; shared by the `gemini` and `vertex` providers. A Gemini thought signature on a function
call comes back from the client as `extra_content.google.thought_signature` on the tool call
(the convention of Google's own OpenAI-compatible endpoint), or as a `gemini:call:` thinking
block (from APIs whose tool calls cannot carry it); a Gemini 3 model's current turn gets
Google's placeholder on calls that came with neither (`levels`); reasoning is `reasoning`'s.
Field names follow the Gemini API reference (generativelanguage v1beta and Vertex AI v1, as
the google-genai SDK writes them).
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any
from urllib.parse import quote

from modelway.errors import bad_request
from modelway.hubext import TOP_K
from modelway.plugins.providers.gemini.levels import leveled, sign_current_turn
from modelway.plugins.providers.gemini.reasoning import sign_text, thinking_config, turn_signatures
from modelway.providerkit import parse_data_url

JSON = dict[str, Any]

_CONFIG_FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("n", "candidateCount"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
    ("seed", "seed"),
    (TOP_K, "topK"),
)
GEMINI_FEATURES = frozenset({TOP_K})
"""What Gemini takes of the hub's optional features (`modelway.hubfit`): `top_k` as `topK`."""
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def model_path(model: str) -> str:
    """The model as one URL path segment (`models/` prefix dropped, `/` escaped)."""
    return quote(model.removeprefix("models/"), safe="@-._~")


def method_name(stream: bool) -> str:
    """The generateContent method and query for a (streamed) request."""
    return "streamGenerateContent?alt=sse" if stream else "generateContent"


def to_gemini_request(body: JSON, model: str = "") -> JSON:
    """The generateContent body for an OpenAI chat-completions request body (`model`: the
    backend's, which decides how reasoning is asked for)."""
    system, contents = _contents(body.get("messages") or [])
    if leveled(model):  # Gemini 3 refuses unsigned calls in the current turn
        sign_current_turn(contents)
    out: JSON = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = generation_config(body, model)
    if config:
        out["generationConfig"] = config
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    tool_config = _tool_config(body.get("tool_choice"))
    if tool_config:
        out["toolConfig"] = tool_config
    return out


def generation_config(body: JSON, model: str = "") -> JSON:
    """`generationConfig` from the OpenAI sampling, length, stop, format and reasoning
    parameters."""
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
    thinking = thinking_config(body, model)
    if thinking:
        config["thinkingConfig"] = thinking
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
    return media_part(url, f"{where}.image_url.url")


def media_part(url: str, where: str) -> JSON:
    """A data URL as `inlineData`; any other URL (http, gs, a Files API URI) as `fileData`."""
    if url.startswith("data:"):
        data_url = parse_data_url(url, where)
        return {"inlineData": {"mimeType": data_url.media_type, "data": data_url.data}}
    file_data: JSON = {"fileUri": url}
    guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
    if guessed:
        file_data = {"mimeType": guessed, **file_data}
    return {"fileData": file_data}


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
        return media_part(data, f"{where}.file.file_data")
    mime = mimetypes.guess_type(str(file.get("filename") or ""))[0] or "application/pdf"
    return {"inlineData": {"mimeType": mime, "data": data}}


def _assistant_parts(message: JSON, where: str, names: dict[str, str]) -> list[JSON]:
    parts = _text_parts(message.get("content"), where)
    text_signature, call_signatures = turn_signatures(message)
    sign_text(parts, text_signature)
    calls = message.get("tool_calls") or []
    if isinstance(message.get("function_call"), dict):
        calls = [*calls, {"function": message["function_call"]}]
    for number, call in enumerate(calls):
        part = _function_call_part(call, f"{where}.tool_calls[{number}]", names)
        if number in call_signatures:
            part.setdefault("thoughtSignature", call_signatures[number])
        parts.append(part)
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
