"""The event loop choice: asyncio's or uvloop's, from the configuration or the environment,
and a real gateway streaming (relay included) and answering on uvloop."""

from __future__ import annotations

import asyncio

import openai
import pytest

from modelway import eventloop
from modelway.errors import ConfigError

uvloop = pytest.importorskip("uvloop")


def test_the_environment_overrides_the_configuration(monkeypatch):
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.chosen("uvloop") == "uvloop"
    assert eventloop.chosen() == "asyncio"
    monkeypatch.setenv(eventloop.ENV, "UVLOOP")
    assert eventloop.chosen("asyncio") == "uvloop"
    monkeypatch.setenv(eventloop.ENV, "trio")
    with pytest.raises(ConfigError, match="one of asyncio, uvloop"):
        eventloop.chosen()


def test_run_uses_the_chosen_loop(monkeypatch):
    monkeypatch.delenv(eventloop.ENV, raising=False)

    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    assert eventloop.run(loop_type(), "uvloop") is uvloop.Loop
    assert eventloop.run(loop_type(), "asyncio") is not uvloop.Loop


def _loop_of(gw) -> type:
    async def loop_type() -> type:
        return type(asyncio.get_running_loop())

    return gw.call(loop_type())


def test_a_gateway_streams_and_answers_on_uvloop(monkeypatch, modelway_gateway, openai_upstream):
    monkeypatch.delenv(eventloop.ENV, raising=False)
    gw = modelway_gateway(
        {
            "gateway": {"event_loop": "uvloop"},
            "plugins": ["openai"],
            "backends": {"up": {"provider": "openai", "base_url": openai_upstream.url}},
            "routes": [{"match": {"model": "*"}, "backend": "up"}],
        }
    )
    assert _loop_of(gw) is uvloop.Loop
    client = gw.closing(openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0))
    messages = [{"role": "user", "content": "hello there"}]
    for _ in range(3):  # the relay's connection is reused across streams
        stream = client.chat.completions.create(model="gpt-x", messages=messages, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "echo: hello there"
    whole = client.chat.completions.create(model="gpt-x", messages=messages)
    assert whole.choices[0].message.content == "echo: hello there"
