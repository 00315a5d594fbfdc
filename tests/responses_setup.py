"""A gateway in front of the four Responses test upstreams (tests/responses_upstreams.py).

Model names choose the backend kind: `resp-native` (an OpenAI backend with the Responses
API: the same-API lane), `resp-chat` (an OpenAI-compatible chat-only server),
`resp-claude` (Anthropic) and `resp-gemini` (Gemini). The gateway has two client keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from modelway.testing.gateway import RunningGateway, run_gateway, write_config
from modelway.testing.upstreams import UpstreamServer
from tests.responses_upstreams import (
    KEY,
    AnthropicBackend,
    ChatBackend,
    GeminiBackend,
    ResponsesBackend,
)

KEYS = ("sk-gw-one", "sk-gw-two")
KINDS = ("native", "chat", "claude", "gemini")
MODELS = {kind: f"resp-{kind}" for kind in KINDS}


@dataclass
class Upstreams:
    native: ResponsesBackend
    chat: ChatBackend
    claude: AnthropicBackend
    gemini: GeminiBackend
    urls: dict[str, str]

    def of(self, kind: str) -> Any:
        return getattr(self, kind)


@contextmanager
def upstreams() -> Iterator[Upstreams]:
    behaviors = {"native": ResponsesBackend(), "chat": ChatBackend(),
                 "claude": AnthropicBackend(), "gemini": GeminiBackend()}
    with ExitStack() as stack:
        servers = {k: stack.enter_context(UpstreamServer(b)) for k, b in behaviors.items()}
        urls = {k: f"http://127.0.0.1:{s.port}" for k, s in servers.items()}
        yield Upstreams(**behaviors, urls=urls)  # type: ignore[arg-type]


def backends(urls: dict[str, str]) -> dict[str, Any]:
    return {
        "native": {"provider": "openai", "base_url": urls["native"] + "/v1", "api_key": KEY,
                   "responses": True},
        "chat": {"provider": "openai", "base_url": urls["chat"] + "/v1", "api_key": KEY},
        "claude": {"provider": "anthropic", "base_url": urls["claude"], "api_key": KEY,
                   "model": "claude-up"},
        "gemini": {"provider": "gemini", "base_url": urls["gemini"], "api_key": KEY,
                   "model": "gemini-up"},
    }


def config_text(urls: dict[str, str], **extra: Any) -> str:
    config: dict[str, Any] = {
        "gateway": {"api_keys": list(KEYS)},
        "plugins": ["openai", "anthropic", "gemini", "responses_api", *extra.pop("plugins", [])],
        "backends": backends(urls),
        "routes": [{"name": kind, "match": {"model": model}, "backend": kind}
                   for kind, model in MODELS.items()],
    }
    config.update(extra)
    return json.dumps(config)


def shared_fixtures() -> tuple[Any, Any, Any]:
    """The fixtures `gw`, `ups` (module scope) and `client` of a test module whose own
    `setup` fixture yields (gateway, upstreams): `gw, ups, client = shared_fixtures()`."""

    @pytest.fixture(scope="module")
    def gw(setup: tuple[RunningGateway, Upstreams]) -> RunningGateway:
        return setup[0]

    @pytest.fixture(scope="module")
    def ups(setup: tuple[RunningGateway, Upstreams]) -> Upstreams:
        return setup[1]

    @pytest.fixture
    def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
        with openai.OpenAI(base_url=gw.base_url, api_key=KEYS[0], max_retries=0) as c:
            yield c

    return gw, ups, client


@contextmanager
def gateway_for(directory: Path, urls: dict[str, str], **extra: Any) -> Iterator[RunningGateway]:
    with run_gateway(write_config(directory, config_text(urls, **extra))) as gw:
        yield gw
