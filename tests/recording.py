"""Fidelity helpers: a scripted recording upstream and field-by-field diffs.

A same-API test sends one request with an official SDK twice: directly to a `Scripted`
upstream, and through the gateway to the same upstream. `assert_same` then compares the two
recorded upstream requests (and the two answers the client read) field by field; `changes`
names what configuration is allowed to change (the model name, a policy's edit), each as a
path and the value the gateway's side must have there (`ABSENT`: the field must be gone).
"""

from __future__ import annotations

import copy
import http.client
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelway.testing.upstreams import Received, Reply

ABSENT = object()
"""In `changes`: the gateway's side must not have this field."""

Path = tuple[str | int, ...]


@dataclass
class Scripted:
    """A behavior that answers every request with one scripted answer: `body` as JSON, or
    `events` (SSE bytes) when the request streams (`stream: true`, or `alt=sse` for Gemini).
    `headers` go on every answer (rate limits, the upstream's request id)."""

    body: Any
    events: list[bytes] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __call__(self, received: Received) -> Reply:
        if _streams(received):
            headers = {"content-type": "text/event-stream", **self.headers}
            return Reply(headers=headers, chunks=list(self.events))
        headers = {"content-type": "application/json", **self.headers}
        return Reply(body=json.dumps(self.body).encode(), headers=headers)


def _streams(received: Received) -> bool:
    if "alt=sse" in received.path or "streamGenerateContent" in received.path:
        return True
    try:
        body = json.loads(received.body) if received.body else None
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True


def sse_events(events: Iterable[Mapping[str, Any]], named: bool = True) -> list[bytes]:
    """SSE bytes of `events` (Anthropic names each `event:` by its type; OpenAI and Gemini
    send `data:` lines only)."""
    out = []
    for event in events:
        data = json.dumps(event)
        name = f"event: {event['type']}\n" if named and "type" in event else ""
        out.append(f"{name}data: {data}\n\n".encode())
    return out


def diff(a: Any, b: Any, path: Path = ()) -> list[str]:
    """Where `a` and `b` differ, as readable paths (`messages[0].content`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in dict.fromkeys([*a, *b]):
            if key not in a or key not in b:
                out.append(
                    f"{_show((*path, key))}: {'only through' if key in b else 'only direct'}"
                )
            else:
                out += diff(a[key], b[key], (*path, key))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{_show(path)}: {len(a)} items direct, {len(b)} through"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, (*path, i))
        ]
    if a != b or type(a) is not type(b):
        return [f"{_show(path)}: {a!r} direct, {b!r} through"]
    return []


def _show(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the whole value)"


def with_changes(value: Any, changes: Mapping[Path, Any]) -> Any:
    """`value` with each path set to its value (`ABSENT` removes it)."""
    out = copy.deepcopy(value)
    for path, new in changes.items():
        node = out
        for part in path[:-1]:
            node = node[part]
        if new is ABSENT:
            del node[path[-1]]
        else:
            node[path[-1]] = copy.deepcopy(new)
    return out


def assert_same(direct: Any, through: Any, changes: Mapping[Path, Any] | None = None) -> None:
    """`through` equals `direct` field by field, except the named `changes`."""
    expected = with_changes(direct, changes or {})
    differences = diff(expected, through)
    assert not differences, "through the gateway differs:\n  " + "\n  ".join(differences)
    for path, new in (changes or {}).items():  # a named change must be a change
        assert diff(with_changes(direct, {path: new}), direct), f"{_show(path)} did not change"


FEATURE_HEADERS = {
    "anthropic": ("anthropic-beta", "anthropic-version", "content-type", "accept", "user-agent"),
    "openai": ("openai-beta", "idempotency-key", "content-type", "accept", "openai-organization"),
    "gemini": ("x-goog-user-project", "x-goog-request-params", "content-type"),
}
"""Request headers a same-API lane must pass upstream unchanged, per API."""


def assert_headers_passed(api: str, direct: Received, through: Received) -> None:
    """Every feature header the SDK sent directly reaches the upstream through the gateway
    with the same value."""
    names = [n for n in FEATURE_HEADERS[api] if n in direct.headers]
    sent = {n: direct.headers[n] for n in names}
    passed = {n: through.headers.get(n) for n in names}
    assert passed == sent, f"headers through the gateway: {passed}, directly: {sent}"


def body_json(received: Received) -> Any:
    return json.loads(received.body)


def sse_data(raw: bytes) -> list[Any]:
    """The JSON of each `data:` line of an SSE body (`[DONE]` kept as the string)."""
    out: list[Any] = []
    for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data:"):
            data = line[5:].strip()
            out.append(data.decode() if data == b"[DONE]" else json.loads(data))
    return out


def post(origin: str, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    """One raw POST to `origin` (`http://127.0.0.1:port`): the status and the whole body."""
    host, port = origin.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
