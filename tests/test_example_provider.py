"""The example third-party provider plugin (tests/plugins/modelway-textgen), installed as a real
distribution: the provider contract in one line, then the official openai SDK through a real
gateway in front of a real TextGen upstream, streamed and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import openai
import pytest

from modelway.pluginmanager import available_plugins
from modelway.testing.contract import ProviderSamples, check_provider
from modelway.testing.gateway import run_gateway, write_config

INSTALL_HINT = "pip install ./tests/plugins/modelway-textgen (README's test command does)"
USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
PIECES = ["Hello", " there"]


def textgen() -> Any:
    if "textgen" not in available_plugins():
        pytest.fail(f"the example provider plugin is not installed; {INSTALL_HINT}")
    import modelway_textgen

    return modelway_textgen


def lines(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def samples() -> ProviderSamples:
    (spec,) = textgen().modelway_providers()
    head = [{"text": p} for p in PIECES]
    return ProviderSamples(
        name="textgen",
        spec=spec,
        answer=json.dumps({"text": "".join(PIECES), "usage": USAGE}).encode(),
        stream=lines(*head, {"done": True, "usage": USAGE}),
        truncated_stream=lines(*head),
        error_stream=lines(head[0], {"error": {"message": "boom"}}, head[1], {"done": True}),
        error_body=json.dumps({"error": {"message": "bad key sk-contract-gateway-key"}}).encode(),
        error_message="bad key sk-contract-gateway-key",
        usage=(USAGE["prompt_tokens"], USAGE["completion_tokens"]),
        backend={"base_url": "http://textgen.invalid"},
    )


def test_the_example_provider_keeps_the_contract():
    check_provider(samples())


class TextGenHandler(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        TextGenHandler.received.append({"path": self.path, "auth": self.headers["authorization"],
                                        **body})
        if body["stream"]:
            data = lines(*({"text": p} for p in PIECES), {"done": True, "usage": USAGE})
        else:
            data = json.dumps({"text": "".join(PIECES), "usage": USAGE}).encode()
        self.send_response(200)
        kind = "application/x-ndjson" if body["stream"] else "application/json"
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TextGenHandler)
    thread = Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    TextGenHandler.received = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_example_provider_serves_the_openai_sdk(tmp_path, upstream):
    textgen()
    config = write_config(
        tmp_path,
        f"""
        plugins: [textgen]
        backends:
          tg: {{provider: textgen, base_url: "{upstream}", api_key: sk-textgen, model: tg-1}}
        routes:
          - {{match: {{model: "tg-*"}}, backend: tg}}
        """,
    )
    ask = [{"role": "user", "content": "hi"}]
    with run_gateway(config) as gw:
        with openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0) as client:
            answer = client.chat.completions.create(model="tg-x", messages=ask, max_tokens=9)
            stream = client.chat.completions.create(model="tg-x", messages=ask, stream=True)
            pieces = [c.choices[0].delta.content for c in stream if c.choices]
    assert answer.choices[0].message.content == "Hello there"
    assert answer.usage is not None and answer.usage.total_tokens == 6
    assert [p for p in pieces if p] == PIECES
    first, second = TextGenHandler.received
    assert first == {"path": "/generate", "auth": "Bearer sk-textgen", "model": "tg-1",
                     "prompt": "user: hi", "stream": False, "max_tokens": 9}
    assert second["stream"] is True and second["max_tokens"] == 256
