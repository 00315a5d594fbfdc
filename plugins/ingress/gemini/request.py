"""A Gemini `generateContent` request body as a canonical (OpenAI chat-completions) body:
system instruction, contents and their parts, function calls and responses. Pure.

The generation settings and tools are read by `options`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelway.errors import bad_request
from modelway.plugins.ingress.gemini.fields import get, list_at, object_at, string_at
from modelway.plugins.ingress.gemini.options import generation_params, openai_tools, tool_choice
from modelway.plugins.ingress.gemini.reasoning import Thoughts, hub_reasoning
from modelway.providerkit import dumps

JSON = dict[str, Any]
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3"}
_UNSUPPORTED_PARTS = ("executableCode", "codeExecutionResult", "toolCall", "toolResponse")


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
    contents = list_at(get(data, "contents"), "contents")
    if not contents:
        raise bad_request("contents must hold at least one content", param="contents")
    for index, content in enumerate(contents):
        messages.extend(_content_messages(content, f"contents[{index}]", calls))
    body: JSON = {"model": model, "messages": messages}
    config = get(data, "generationConfig")
    body.update(generation_params(config))
    body.update(hub_reasoning(get(config, "thinkingConfig")))
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
    parts = list_at(get(object_at(instruction, "systemInstruction"), "parts"), "systemInstruction")
    texts = [_text_only(part, f"systemInstruction.parts[{i}]") for i, part in enumerate(parts)]
    texts = [text for text in texts if text]
    if not texts:
        return []
    content: str | list[JSON] = texts[0]
    if len(texts) > 1:
        content = [{"type": "text", "text": text} for text in texts]
    return [{"role": "system", "content": content}]


def _text_only(part: Any, where: str) -> str:
    text = get(object_at(part, where), "text")
    if not isinstance(text, str):
        raise bad_request(f"{where}: only text parts are allowed here", param=where)
    return text


def _content_messages(content: Any, where: str, calls: _Calls) -> list[JSON]:
    content = object_at(content, where)
    role = get(content, "role") or "user"
    parts = [
        object_at(p, f"{where}.parts[{i}]")
        for i, p in enumerate(list_at(content.get("parts"), where))
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
    thoughts = Thoughts()
    calls.open = []
    for number, part in enumerate(parts):
        if thoughts.add(part):
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
    reasoning = thoughts.fields()
    if not text and not tool_calls and not reasoning:
        return None
    message: JSON = {"role": "assistant", "content": text or None, **reasoning}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_call(part: JSON, call: Any, where: str, calls: _Calls) -> JSON:
    call = object_at(call, f"{where}.functionCall")
    name = string_at(get(call, "name"), f"{where}.functionCall.name")
    args = get(call, "args")
    arguments = dumps(object_at(args, f"{where}.functionCall.args") if args is not None else {})
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
            tools.append(
                _tool_message(object_at(response, f"{here}.functionResponse"), here, calls)
            )
        elif get(part, "thought") is not True:
            converted = user_part(part, here)
            if converted is not None:
                content.append(converted)
    if content:
        tools.append({"role": "user", "content": _parts_content(content)})
    return tools


def _tool_message(response: JSON, where: str, calls: _Calls) -> JSON:
    name = string_at(get(response, "name"), f"{where}.functionResponse.name")
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
        return _inline_part(object_at(inline, f"{where}.inlineData"), where)
    file_data = get(part, "fileData")
    if file_data is not None:
        return _file_part(object_at(file_data, f"{where}.fileData"), where)
    if get(part, "thoughtSignature") is not None or get(part, "videoMetadata") is not None:
        return None
    raise bad_request(f"{where}: this kind of part cannot be translated", param=where)


def _inline_part(inline: JSON, where: str) -> JSON:
    mime = string_at(get(inline, "mimeType"), f"{where}.inlineData.mimeType").lower()
    data = string_at(get(inline, "data"), f"{where}.inlineData.data")
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
    uri = string_at(get(file_data, "fileUri"), f"{where}.fileData.fileUri")
    mime = get(file_data, "mimeType") or mimetypes.guess_type(uri.split("?", 1)[0])[0] or ""
    if not str(mime).startswith("image/"):
        raise bad_request(
            f"{where}.fileData: only images can be sent by URI through this gateway "
            f"(got '{mime or 'unknown type'}'); send other files as inlineData",
            param=f"{where}.fileData",
        )
    return {"type": "image_url", "image_url": {"url": uri}}
