"""Building blocks for the policy views of `modelway.wire`, shared by every wire API.

A view is a thin object over a wire body (a dict): it lists the body's texts as `Segment`s
that write back in place, adds messages, and maps portable settings to the wire's own fields.
The helpers here find text in the shapes most APIs share (a string, or a list of typed text
parts; string values inside JSON-encoded tool arguments) and walk settings paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelway import jsonx
from modelway.wire import Call, Segment

Path = tuple[str, ...]


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list (anything else gives none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def writer(holder: Any, key: Any, edited: Callable[[], None]) -> Callable[[str], None]:
    """Writes a text to `holder[key]` (a dict or a list) and marks the body edited."""

    def write(text: str) -> None:
        holder[key] = text
        edited()

    return write


def text_segments(
    holder: dict[str, Any],
    key: str,
    role: str,
    kind: str,
    edited: Callable[[], None],
    part_types: Iterable[str] = ("text",),
) -> list[Segment]:
    """The texts of `holder[key]`: a string, or a list of parts of the given types with
    a `text` string."""
    content = holder.get(key)
    if isinstance(content, str):
        return [Segment(role, kind, content, writer(holder, key, edited))]
    types = frozenset(part_types)
    return [
        Segment(role, kind, part["text"], writer(part, "text", edited))
        for part in dicts(content)
        if part.get("type") in types and isinstance(part.get("text"), str)
    ]


def json_string_segments(
    holder: dict[str, Any], key: str, role: str, kind: str, edited: Callable[[], None]
) -> list[Segment]:
    """The string values inside `holder[key]`, a JSON text (tool-call arguments): edits are
    written back as JSON. A text that is not a JSON object or list is one segment itself."""
    raw = holder.get(key)
    if not isinstance(raw, str):
        return []
    try:
        parsed = jsonx.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict | list):
        return [Segment(role, kind, raw, writer(holder, key, edited))]

    def rewrite() -> None:
        holder[key] = jsonx.dumps_text(parsed)
        edited()

    return object_string_segments(parsed, role, kind, rewrite)


def object_string_segments(
    value: dict[str, Any] | list[Any], role: str, kind: str, edited: Callable[[], None]
) -> list[Segment]:
    """The string values anywhere inside a JSON object or list (tool inputs)."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    out: list[Segment] = []
    for key, item in items:
        if isinstance(item, str):
            out.append(Segment(role, kind, item, writer(value, key, edited)))
        elif isinstance(item, dict | list):
            out.extend(object_string_segments(item, role, kind, edited))
    return out


def get_path(body: Mapping[str, Any], path: Path) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def set_path(body: dict[str, Any], path: Path, value: Any) -> None:
    node = body
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def remove_path(body: dict[str, Any], path: Path) -> bool:
    parent = get_path(body, path[:-1]) if len(path) > 1 else body
    if isinstance(parent, dict) and path[-1] in parent:
        del parent[path[-1]]
        return True
    return False


class SettingsView:
    """Portable settings mapped to wire paths; any other name is a top-level field.

    Subclasses set `paths` (portable name -> path in the body) and may override
    `to_wire`/`from_wire` for values of another form (a stop string versus a list).
    """

    paths: Mapping[str, Path] = {}

    def __init__(self, call: Call) -> None:
        self.call = call
        self.body = call.body

    def edited(self) -> None:
        self.call.mark_edited()

    def _path(self, name: str) -> Path:
        return self.paths.get(name, (name,))

    def get(self, name: str) -> Any:
        return self.from_wire(name, get_path(self.body, self._path(name)))

    def set(self, name: str, value: Any) -> None:
        path = self._path(name)
        set_path(self.body, path, self.to_wire(name, value))
        self.call.policy_fields.add(path[0])
        self.edited()

    def remove(self, name: str) -> bool:
        removed = remove_path(self.body, self._path(name))
        if removed:
            self.edited()
        return removed

    def to_wire(self, name: str, value: Any) -> Any:
        return value

    def from_wire(self, name: str, value: Any) -> Any:
        return value


def stop_list(value: Any) -> Any:
    """A portable `stop` (a string or a list) as the list most wire APIs take."""
    return [value] if isinstance(value, str) else value
