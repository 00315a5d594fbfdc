"""The `modelway` pytest plugin (entry point `pytest11`): fixtures for testing with a gateway.

Installed with modelway, so a plugin author's tests can use, with no import:

- `modelway_gateway`: a factory, `modelway_gateway(config, extra_plugins=(), mode=None,
  prepare=None)`, that starts a real gateway from a dict, YAML text or a file and returns
  a `RunningGateway`; every gateway it started stops at the end of the test.
- `modelway_upstream`: a factory, `modelway_upstream(behavior=None, host=..., tls=...)`, for
  recording fake upstreams (`UpstreamServer`), stopped at the end of the test.
- `openai_upstream`, `anthropic_upstream`, `gemini_upstream`: one started upstream each,
  speaking OpenAI chat/embeddings, Anthropic Messages, or Gemini generateContent.
- `closed_port`: a port on 127.0.0.1 that refuses connections, reserved for the session
  (bound, never listening), for a backend that is down.
- `fake_clock`: a `FakeClock` to hand to code that takes a clock.

With the ini option `modelway_fail_on_unclosed = true`, a test fails when asyncio reports an
unclosed aiohttp session or connector ("Unclosed ...") while it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from modelway.testing.clock import FakeClock

if TYPE_CHECKING:
    from modelway.testing.gateway import RunningGateway
    from modelway.testing.upstreams import UpstreamServer

UNCLOSED_OPTION = "modelway_fail_on_unclosed"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        UNCLOSED_OPTION,
        "fail a test when asyncio reports an unclosed aiohttp session or connector",
        type="bool",
        default=False,
    )


class _UnclosedLog(logging.Handler):
    """Collects asyncio's "Unclosed client session" / "Unclosed connector" reports."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Unclosed"):
            self.lines.append(f"{record.name}: {message.splitlines()[0]}")


_unclosed = _UnclosedLog()


def pytest_configure(config: pytest.Config) -> None:
    if config.getini(UNCLOSED_OPTION):
        logging.getLogger().addHandler(_unclosed)


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(_unclosed)


@pytest.fixture(autouse=True)
def _modelway_unclosed_check(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.config.getini(UNCLOSED_OPTION):
        yield
        return
    _unclosed.lines.clear()
    yield
    found, _unclosed.lines[:] = list(_unclosed.lines), []
    if found:
        pytest.fail("asyncio reported unclosed resources:\n" + "\n".join(found), pytrace=False)


@pytest.fixture
def modelway_gateway(tmp_path: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Start real gateways: `modelway_gateway(config, extra_plugins=(), mode=None,
    prepare=None)`; each stops (gracefully) at the end of the test."""
    from modelway.testing.gateway import run_gateway

    with ExitStack() as stack:

        def start(config: Any, extra_plugins: Any = (), **options: Any) -> RunningGateway:
            options.setdefault("directory", tmp_path)
            return stack.enter_context(run_gateway(config, extra_plugins, **options))

        yield start


@pytest.fixture
def modelway_upstream() -> Iterator[Callable[..., UpstreamServer]]:
    """Start recording fake upstreams: `modelway_upstream(behavior=None, host=..., tls=...)`
    (the default behavior speaks OpenAI); each stops at the end of the test."""
    from modelway.testing.upstreams import UpstreamServer

    with ExitStack() as stack:

        def start(behavior: Any = None, **options: Any) -> UpstreamServer:
            return stack.enter_context(UpstreamServer(behavior, **options))

        yield start


@pytest.fixture
def openai_upstream(modelway_upstream: Callable[..., UpstreamServer]) -> UpstreamServer:
    """An upstream speaking OpenAI chat completions and embeddings (`OpenAIChat`)."""
    from modelway.testing.fake_openai import OpenAIChat

    return modelway_upstream(OpenAIChat())


@pytest.fixture
def anthropic_upstream(modelway_upstream: Callable[..., UpstreamServer]) -> UpstreamServer:
    """An upstream speaking the Anthropic Messages API; the key it accepts is
    `sk-ant-gateway` (`AnthropicMessages`)."""
    from modelway.testing.fake_anthropic import AnthropicMessages

    return modelway_upstream(AnthropicMessages())


@pytest.fixture
def gemini_upstream(modelway_upstream: Callable[..., UpstreamServer]) -> UpstreamServer:
    """An upstream speaking Gemini's generateContent under `/v1beta/models/`."""
    from modelway.testing.fake_gemini import gemini_behavior

    return modelway_upstream(gemini_behavior())


@pytest.fixture(scope="session")
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused, reserved for the whole session."""
    from modelway.testing.wait import refused_port

    with refused_port() as port:
        yield port


@pytest.fixture
def fake_clock() -> FakeClock:
    """A monotonic clock that moves only when the test advances it."""
    return FakeClock()
