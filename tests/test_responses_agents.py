"""The OpenAI Agents SDK through the gateway to every backend kind: a plain run, a streamed
run (text streams, and equals the final output), a function tool (the SDK runs it and
sends its output back), a second turn from `to_input_list()` and one by
`previous_response_id`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

agents = pytest.importorskip("agents", reason="openai-agents is in the test extra")
from openai import AsyncOpenAI  # noqa: E402

from modelway.testing.gateway import RunningGateway  # noqa: E402
from tests.responses_setup import KEYS, KINDS, MODELS, gateway_for, upstreams  # noqa: E402


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    agents.set_tracing_disabled(True)
    with upstreams() as ups, gateway_for(tmp_path_factory.mktemp("agents"), ups.urls) as gw:
        yield gw


@agents.function_tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"It is sunny in {city}."


def run(gw: RunningGateway, work: Any) -> Any:
    async def main() -> Any:
        client = AsyncOpenAI(base_url=gw.base_url, api_key=KEYS[0], max_retries=0)
        provider = agents.OpenAIProvider(openai_client=client, use_responses=True)
        try:
            return await work(agents.RunConfig(model_provider=provider, tracing_disabled=True))
        finally:
            await client.close()

    return asyncio.run(main())


def plain(kind: str) -> Any:
    return agents.Agent(name="Assistant", instructions="Be brief.", model=MODELS[kind])


def tooled(kind: str) -> Any:
    return agents.Agent(name="Weather", instructions="Use the tool.", model=MODELS[kind],
                        tools=[get_weather])


@pytest.mark.parametrize("kind", KINDS)
def test_plain_run(gw, kind):
    result = run(gw, lambda config: agents.Runner.run(plain(kind), "hi", run_config=config))
    assert result.final_output == "echo: hi"
    assert [item.type for item in result.new_items] == ["message_output_item"]


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_run(gw, kind):
    async def work(config: Any) -> tuple[str, list[str], Any]:
        streamed = agents.Runner.run_streamed(plain(kind), "stream it", run_config=config)
        text, raw = "", []
        async for event in streamed.stream_events():
            if event.type == "raw_response_event":
                raw.append(event.data.type)
                if event.data.type == "response.output_text.delta":
                    text += event.data.delta
        return text, raw, streamed.final_output

    text, raw, final = run(gw, work)
    assert text == final == "echo: stream it"
    assert raw[0] == "response.created" and raw[-1] == "response.completed"


@pytest.mark.parametrize("kind", KINDS)
def test_function_tool_and_a_second_turn(gw, kind):
    async def work(config: Any) -> tuple[Any, Any, Any]:
        first = await agents.Runner.run(tooled(kind), "weather in Paris?", run_config=config)
        history = [*first.to_input_list(), {"role": "user", "content": "and tomorrow?"}]
        again = await agents.Runner.run(tooled(kind), history, run_config=config)
        chained = await agents.Runner.run(plain(kind), "thanks", run_config=config,
                                          previous_response_id=first.last_response_id)
        return first, again, chained

    first, again, chained = run(gw, work)
    assert first.final_output == "The tool said: It is sunny in Paris."
    assert [item.type for item in first.new_items] == [
        "tool_call_item", "tool_call_output_item", "message_output_item"]
    assert again.final_output == "The tool said: It is sunny in Paris."
    assert chained.final_output == "echo: thanks"
