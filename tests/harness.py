"""Runs a real gateway (the same GatewayServer `modelway run` uses) in a thread, for tests."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelway.runner import GatewayServer
from modelway.runtime import Gateway, load_gateway


@dataclass
class RunningGateway:
    server: GatewayServer
    host: str
    port: int
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the gateway's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def gateway(self) -> Gateway:
        return self.server.gateway


def write_config(directory: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


@contextmanager
def run_gateway(
    config: Path | str,
    extra_plugins: tuple[tuple[str, Any], ...] = (),
    port: int = 0,
    mode: str | None = None,
) -> Iterator[RunningGateway]:
    """Start a gateway on an ephemeral port and stop it (gracefully) on exit."""
    gateway = load_gateway(str(config), extra_plugins)
    server = GatewayServer(
        gateway,
        host="127.0.0.1",
        port=port,
        mode=mode,
        config_path=str(config),
        extra_plugins=extra_plugins,
    )
    ready = threading.Event()
    addresses: list[tuple[str, int]] = []
    loop_box: list[asyncio.AbstractEventLoop] = []
    failure: list[BaseException] = []

    def on_ready(found: list[tuple[str, int]]) -> None:
        addresses.extend(found)
        loop_box.append(asyncio.get_running_loop())
        ready.set()

    def main() -> None:
        try:
            asyncio.run(server.run(on_ready, handle_signals=False))
        except BaseException as exc:  # reported to the test thread below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    if not ready.wait(30) or failure:
        raise RuntimeError(f"gateway did not start: {failure}")
    try:
        yield RunningGateway(server, "127.0.0.1", addresses[0][1], loop_box[0])
    finally:
        loop_box[0].call_soon_threadsafe(server.request_stop)
        thread.join(30)
