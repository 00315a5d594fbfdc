"""Helpers for the governance tests: key hashes, one raw request per client API, admin calls."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from typing import Any

ADMIN_KEY = "admin-secret"


def hashed(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _request(url: str, method: str, body: Any, headers: dict[str, str]) -> tuple[int, dict, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, head, raw = exc.code, dict(exc.headers), exc.read()
    head = {k.lower(): v for k, v in head.items()}
    try:
        return status, head, json.loads(raw)
    except ValueError:
        return status, head, raw


def ask(base: str, api: str, key: str | None, model: str, text: str = "hi",
        stream: bool = False, **extra: Any) -> tuple[int, dict, Any]:
    """One request in `api`'s wire shape (openai, anthropic, gemini), with its key header."""
    if api == "openai":
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        if stream:
            body["stream"] = True
        return _request(base + "/v1/chat/completions", "POST", body, headers)
    if api == "anthropic":
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"} if key else {}
        body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}],
                **extra}
        if stream:
            body["stream"] = True
        return _request(base + "/v1/messages", "POST", body, headers)
    headers = {"x-goog-api-key": key} if key else {}
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}
    return _request(f"{base}/v1beta/models/{model}:{verb}", "POST", body, headers)


def admin(base: str, method: str, path: str, body: Any = None) -> tuple[int, dict, Any]:
    return _request(base + path, method, body, {"authorization": f"Bearer {ADMIN_KEY}"})


def error_code(api: str, body: Any) -> tuple[str | None, str | None]:
    """(type or status, code) of an error body in `api`'s shape."""
    if api == "openai":
        return body["error"]["type"], body["error"]["code"]
    if api == "anthropic":
        assert body["type"] == "error"
        return body["error"]["type"], None
    error = body["error"]
    reasons = [d.get("reason") for d in error.get("details", [])]
    return error["status"], (reasons[0].lower() if reasons else None)


def ask_path(base: str, path: str) -> tuple[int, dict, Any]:
    """A plain GET of one of the gateway's own paths (`/readyz`)."""
    return _request(base + path, "GET", None, {})
