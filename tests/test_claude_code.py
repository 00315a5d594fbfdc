"""Claude Code (`@anthropic-ai/claude-code`, print mode `claude -p`) run directly against a
recording Anthropic upstream and then through the gateway (an `anthropic` backend, the
same-API lane). The upstream must see the same requests (path with `?beta=true`, every body
field: thinking, context management, cache_control markers, metadata; every header but the
connection's own and the SDK's telemetry: `anthropic-beta`, `anthropic-version`, Claude
Code's `user-agent`, `x-app` and session id), the key aside, and Claude Code must print the
same answer. The scripted answer streams thinking with a signature and reports cache reads
and writes.

Claude Code runs offline: ANTHROPIC_BASE_URL, a throw-away HOME and CLAUDE_CONFIG_DIR,
telemetry, the auto-updater and non-essential traffic off. `.ci/run` installs it (npm, into
`.cache/node`); outside CI the test is skipped when it is missing. CLAUDE_BIN names another
binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelway.testing.gateway import RunningGateway, run_gateway
from modelway.testing.upstreams import Received, Reply, UpstreamServer
from tests.recording import assert_same, body_json, sse_events

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"


def claude_binary() -> str | None:
    for candidate in (
        os.environ.get("CLAUDE_BIN"),
        str(CACHE / "node/node_modules/.bin/claude"),
        shutil.which("claude"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


CLAUDE = claude_binary()
if CLAUDE is None:
    if os.environ.get("MODELWAY_CI"):
        raise RuntimeError("Claude Code is missing in CI: .ci/run installs it into .cache/node")
    pytest.skip(
        "Claude Code is not installed (.ci/run installs it; or set CLAUDE_BIN)",
        allow_module_level=True,
    )

GATEWAY_KEY = "sk-ant-claude-code-gateway"
CLIENT_KEY = "sk-client-claude-code"
ANSWER = "Four."
SIGNATURE = "EqQBCkYIARgCKkBclaude-code=="
MESSAGE: dict[str, Any] = {
    "id": "msg_claude_code",
    "type": "message",
    "role": "assistant",
    "model": "claude-opus-5-5",
    "content": [],
    "stop_reason": None,
    "stop_sequence": None,
    "usage": {
        "input_tokens": 8,
        "cache_creation_input_tokens": 4000,
        "cache_read_input_tokens": 12000,
        "output_tokens": 1,
    },
}


def events() -> list[dict[str, Any]]:
    def delta(index: int, **fields: Any) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": index, "delta": fields}

    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    return [
        {"type": "message_start", "message": MESSAGE},
        {"type": "content_block_start", "index": 0, "content_block": thinking},
        delta(0, type="thinking_delta", thinking="Two and two make four."),
        delta(0, type="signature_delta", signature=SIGNATURE),
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        delta(1, type="text_delta", text=ANSWER),
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]


def behave(received: Received) -> Reply:
    """Claude Code's requests: messages (streamed or not) and token counts."""
    path = received.path.split("?")[0]
    if path == "/v1/messages/count_tokens":
        return Reply.json({"input_tokens": 16000})
    if path != "/v1/messages":
        return Reply.json({"type": "error", "error": {"type": "not_found_error"}}, status=404)
    if received.json.get("stream"):
        return Reply(headers={"content-type": "text/event-stream"}, chunks=sse_events(events()))
    text = [{"type": "text", "text": ANSWER}]
    return Reply.json({**MESSAGE, "content": text, "stop_reason": "end_turn"})


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer(behave) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: UpstreamServer) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "backends": {
            "claude": {"provider": "anthropic", "base_url": upstream.origin, "api_key": GATEWAY_KEY}
        },
        "routes": [{"name": "claude-code", "match": {"model": "*"}, "backend": "claude"}],
    }
    with run_gateway(config) as gw:
        yield gw


def claude_print(base_url: str, key: str, home: Path, prompt: str) -> str:
    """`claude -p prompt` with a fresh home (the same path each time: it is in the prompt)."""
    shutil.rmtree(home, ignore_errors=True)
    (home / "config").mkdir(parents=True)
    (home / "work").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / "config"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }
    assert CLAUDE is not None
    result = subprocess.run(
        [CLAUDE, "-p", prompt],
        env=env,
        cwd=home / "work",
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


NOT_COMPARED = ("host", "content-length", "connection", "accept-encoding", "x-api-key")
"""Headers of the connection itself, and the key (the gateway's own upstream). The SDK's
telemetry headers (`x-stainless-*`) are not passed on either."""


def compared(headers: dict[str, str]) -> dict[str, str]:
    """The headers to compare; the session id differs between any two runs."""
    out = {
        name: value
        for name, value in headers.items()
        if name not in NOT_COMPARED and not name.startswith("x-stainless-")
    }
    if "x-claude-code-session-id" in out:
        out["x-claude-code-session-id"] = "(per session)"
    return out


@pytest.mark.slow
def test_claude_code_sees_the_same_through_the_gateway(gateway, upstream, tmp_path):
    home = tmp_path / "claude-home"
    upstream.received.clear()
    direct = claude_print(upstream.origin, GATEWAY_KEY, home, "What is 2+2?")
    sent = list(upstream.received)
    upstream.received.clear()
    through = claude_print(gateway.url, CLIENT_KEY, home, "What is 2+2?")
    got = list(upstream.received)
    assert direct.strip() == through.strip() == ANSWER
    assert [(r.method, r.path) for r in got] == [(r.method, r.path) for r in sent]
    assert any(r.path == "/v1/messages?beta=true" for r in got)
    for before, after in zip(sent, got, strict=True):
        assert_same(stable(body_json(before)), stable(body_json(after)))
        assert compared(after.headers) == compared(before.headers)
        assert "anthropic-beta" in after.headers and "x-claude-code-session-id" in after.headers
        assert after.headers["x-api-key"] == GATEWAY_KEY
        assert CLIENT_KEY not in str(after.headers)
    main = body_json(got[-1])
    assert "thinking" in main or "context_management" in main or "cache_control" in str(main)


def stable(body: Any) -> Any:
    """A request body without what differs between any two runs of Claude Code (its session
    id in `metadata.user_id`)."""
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        return {**body, "metadata": {**body["metadata"], "user_id": "(per session)"}}
    return body
