"""The example plugin's own tests, written the way a plugin author writes them: with the
fixtures of modelway's test kit (`modelway_gateway`, `openai_upstream`), which the
`modelway` package registers as a pytest plugin, and nothing else from modelway's tests.

Run them with `pytest` in this folder once modelway and this distribution are installed.
"""

from __future__ import annotations

import json

import openai

from modelway.testing.wait import wait_until


def config(upstream_url: str, log: str, hello: dict[str, str] | None) -> dict[str, object]:
    plugins: dict[str, object] = {"openai": None, "access_log": {"path": log}}
    if hello is not None:
        plugins["hello"] = hello
    return {
        "plugins": plugins,
        "backends": {"up": {"provider": "openai", "base_url": upstream_url, "api_key": "sk-up"}},
        "routes": [{"match": {"model": "gpt-*"}, "backend": "up"}],
    }


def test_header_upstream_and_greeting_in_the_access_log(
    modelway_gateway, openai_upstream, tmp_path
):
    log = tmp_path / "access.log"
    gw = modelway_gateway(config(openai_upstream.url, str(log), {"header_value": "abc"}))
    with openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
        stream = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "a b"}], stream=True
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert answer.choices[0].message.content == "echo: hi"
    assert streamed == "echo: a b"
    assert [r.headers.get("x-hello") for r in openai_upstream.received] == ["abc", "abc"]
    # A stream's record is written once the gateway has finished the flow, which may be just
    # after the client read the last event.
    wait_until(lambda: len(log.read_text().splitlines()) >= 2, what="both access-log records")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["status"], r["stream"], r["hello"]) for r in records] == [
        (200, False, "hello"),
        (200, True, "hello"),
    ]


def test_nothing_happens_when_not_enabled(modelway_gateway, openai_upstream, tmp_path):
    log = tmp_path / "access.log"
    gw = modelway_gateway(config(openai_upstream.url, str(log), None))
    with openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0) as client:
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
    assert "x-hello" not in openai_upstream.last.headers
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["status"] == 200
    assert "hello" not in record


def test_the_greeting_is_configurable(modelway_gateway, openai_upstream, tmp_path):
    log = tmp_path / "access.log"
    hello = {"header_value": "xyz", "greeting": "hey"}
    gw = modelway_gateway(config(openai_upstream.url, str(log), hello))
    chat = {"model": "gpt-a", "messages": [{"role": "user", "content": "x"}]}
    assert gw.http("POST", "/v1/chat/completions", chat).status == 200
    assert openai_upstream.last.headers["x-hello"] == "xyz"
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert record["hello"] == "hey"
