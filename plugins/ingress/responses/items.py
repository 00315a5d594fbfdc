"""Responses input items as hub (chat-completions) messages.

Message items keep their role (developer stays developer); consecutive assistant items
(text, function and custom tool calls) join one assistant message, as a chat backend wants
them; each tool output becomes a `tool` message. A reasoning item whose `encrypted_content`
is the gateway's own (mw1) gives its thinking blocks, signatures included, to the assistant
message that follows it; OpenAI's own encrypted reasoning means nothing to another backend
and is dropped.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from modelway.errors import bad_request
from modelway.plugins.ingress.responses import mw1
from modelway.plugins.ingress.responses.schema import (
    AdditionalToolsItem,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputFile,
    InputImage,
    InputText,
    MessageItem,
    OutputText,
    ReasoningItem,
    Refusal,
    ToolSearchCallItem,
    ToolSearchOutputItem,
)
from modelway.plugins.ingress.responses.tools import chat_name, custom_arguments

Json = dict[str, Any]
Located = tuple[str, Any]
"""An item with the JSON path it came from (for errors), e.g. `("input[3]", item)`."""


def chat_messages(items: list[Located]) -> list[Json]:
    builder = _Builder()
    for where, item in items:
        builder.add(where, item)
    return builder.finish()


class _Builder:
    def __init__(self) -> None:
        self.messages: list[Json] = []
        self.assistant: Json | None = None
        """The assistant message that the next assistant items join, if any."""
        self.blocks: list[Json] = []
        """Thinking blocks waiting for the next assistant message."""

    def add(self, where: str, item: Any) -> None:
        if isinstance(item, MessageItem):
            self._message(where, item)
        elif isinstance(item, FunctionCallItem):
            name = chat_name(item.name, item.namespace)
            self._call(item.call_id, name, item.arguments)
        elif isinstance(item, CustomToolCallItem):
            name = chat_name(item.name, item.namespace)
            self._call(item.call_id, name, custom_arguments(item.input))
        elif isinstance(item, FunctionCallOutputItem | CustomToolCallOutputItem):
            self._tool_output(where, item)
        elif isinstance(item, ReasoningItem):
            self._reasoning(item)
        elif isinstance(item, ToolSearchCallItem):
            arguments = json.dumps(item.arguments or {}, ensure_ascii=False)
            self._call(item.call_id or item.id or "", "tool_search", arguments)
        elif isinstance(item, ToolSearchOutputItem):
            self._tool_search_output(item)
        # additional_tools items only add tools (see request.py); item references are
        # resolved before this point

    def finish(self) -> list[Json]:
        for message in self.messages:
            if message["role"] == "assistant" and message.get("content") is None:
                message["content"] = None if message.get("tool_calls") else ""
        return self.messages

    def _message(self, where: str, item: MessageItem) -> None:
        if item.role == "assistant":
            self._assistant_text(where, item)
            return
        self._end_turn()
        content = item.content
        if isinstance(content, str):
            self.messages.append({"role": item.role, "content": content})
            return
        parts = [_part(f"{where}.content[{i}]", part) for i, part in enumerate(content)]
        self.messages.append({"role": item.role, "content": parts_content(parts)})

    def _assistant_text(self, where: str, item: MessageItem) -> None:
        content = item.content
        if isinstance(content, str):
            text = content
        else:
            parts = enumerate(content)
            text = "".join(_assistant_part(f"{where}.content[{i}]", p) for i, p in parts)
        message = self._open_assistant()
        message["content"] = (message.get("content") or "") + text

    def _call(self, call_id: str, name: str, arguments: str) -> None:
        function = {"name": name, "arguments": arguments}
        call = {"id": call_id, "type": "function", "function": function}
        self._open_assistant().setdefault("tool_calls", []).append(call)

    def _open_assistant(self) -> Json:
        if self.assistant is not None and not self.blocks:
            return self.assistant
        message: Json = {"role": "assistant", "content": None}
        if self.blocks:
            message["thinking_blocks"] = self.blocks
            text = "".join(b.get("thinking", "") for b in self.blocks)
            if text:
                message["reasoning_content"] = text
            self.blocks = []
        self.messages.append(message)
        self.assistant = message
        return message

    def _tool_output(
        self, where: str, item: FunctionCallOutputItem | CustomToolCallOutputItem
    ) -> None:
        self._end_turn()
        output = item.output
        if isinstance(output, str):
            content: str | list[Json] = output
        else:
            parts = [_part(f"{where}.output[{i}]", part) for i, part in enumerate(output)]
            content = parts_content(parts, join=True)
        self.messages.append({"role": "tool", "tool_call_id": item.call_id, "content": content})

    def _end_turn(self) -> None:
        """A user, system or tool message ends the assistant's turn; thinking that no
        assistant item followed belongs to no message."""
        self.assistant = None
        self.blocks = []

    def _tool_search_output(self, item: ToolSearchOutputItem) -> None:
        self._end_turn()
        names = [_tool_label(tool) for tool in item.tools]
        text = "Tools now available: " + ", ".join(names) if names else "No tools found."
        self.messages.append({"role": "tool", "tool_call_id": item.call_id or "", "content": text})

    def _reasoning(self, item: ReasoningItem) -> None:
        blocks = mw1.decode(item.encrypted_content) if item.encrypted_content else None
        if blocks:
            self.blocks.extend(blocks)


def parts_content(parts: list[Json], join: bool = False) -> str | list[Json]:
    """A lone text part (or, with `join`, text parts only) as a plain string, which every
    chat backend takes."""
    if all(part["type"] == "text" for part in parts) and (join or len(parts) == 1):
        return "\n".join(part["text"] for part in parts)
    return parts


def _assistant_part(where: str, part: Any) -> str:
    if isinstance(part, OutputText | InputText):
        return part.text
    if isinstance(part, Refusal):
        return part.refusal
    raise bad_request(
        f"'{where}': an assistant message holds only output_text and refusal parts, "
        f"not {part.type}",
        param=f"{where}.type",
        code="invalid_value",
    )


def _part(where: str, part: Any) -> Json:
    if isinstance(part, InputText | OutputText):
        return {"type": "text", "text": part.text}
    if isinstance(part, InputImage):
        return _image(where, part)
    if isinstance(part, InputFile):
        return _file(where, part)
    raise bad_request(
        f"'{where}': a {part.type} part belongs in an assistant message",
        param=f"{where}.type",
        code="invalid_value",
    )


def _image(where: str, part: InputImage) -> Json:
    if part.image_url:
        image: Json = {"url": part.image_url}
        if part.detail in ("low", "high", "auto"):
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if part.file_id:
        raise _file_id(f"{where}.file_id", "image_url (a URL or a data: URL)")
    raise bad_request(
        f"'{where}': an input_image needs image_url", param=f"{where}.image_url",
        code="missing_required_parameter",
    )


def _file(where: str, part: InputFile) -> Json:
    if part.file_data:
        file: Json = {"file_data": _data_url(where, part)}
        if part.filename:
            file["filename"] = part.filename
        return {"type": "file", "file": file}
    if part.file_id:
        raise _file_id(f"{where}.file_id", "file_data (a base64 data: URL)")
    if part.file_url:
        raise bad_request(
            f"'{where}': files by URL (file_url) cannot be sent to this backend; send the "
            "content as file_data (a base64 data: URL)",
            param=f"{where}.file_url",
            code="unsupported_value",
        )
    raise bad_request(
        f"'{where}': an input_file needs file_data", param=f"{where}.file_data",
        code="missing_required_parameter",
    )


def _data_url(where: str, part: InputFile) -> str:
    """file_data as a data URL; bare base64 is accepted when the filename gives its type."""
    data = part.file_data or ""
    if data.startswith("data:"):
        return data
    media_type = mimetypes.guess_type(part.filename or "")[0]
    if media_type is None:
        raise bad_request(
            f"'{where}': file_data must be a data: URL (data:<media type>;base64,...) or "
            "come with a filename that gives its type",
            param=f"{where}.file_data",
            code="invalid_value",
        )
    return f"data:{media_type};base64,{data}"


def _file_id(param: str, instead: str) -> Exception:
    return bad_request(
        f"uploaded files (file_id) are stored by OpenAI and cannot be sent to this backend; "
        f"send the content as {instead}",
        param=param,
        code="unsupported_value",
    )


def _tool_label(tool: Json) -> str:
    name = str(tool.get("name") or tool.get("type"))
    if tool.get("type") == "namespace":
        inner = [str(t.get("name")) for t in tool.get("tools") or () if isinstance(t, dict)]
        return ", ".join(chat_name(n, name) for n in inner)
    return name


def added_tools(items: list[Located]) -> list[tuple[str, list[Any]]]:
    """The tools that `additional_tools` and `tool_search_output` items bring, with the
    path of each list."""
    return [
        (f"{where}.tools", item.tools)
        for where, item in items
        if isinstance(item, AdditionalToolsItem | ToolSearchOutputItem)
    ]
