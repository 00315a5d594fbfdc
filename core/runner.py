"""Runs the gateway on an embedded mitmproxy master, and stops it gracefully.

SIGTERM (or SIGINT) closes the listening socket at once, lets in-flight requests, streams
included, finish within the grace period, then shuts down.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import signal
from collections.abc import Callable
from typing import Any

from mitmproxy import options
from mitmproxy.tools.dump import DumpMaster

from modelway.addons.gateway import ModelwayAddon
from modelway.engine import Engine
from modelway.runtime import Gateway

logger = logging.getLogger("modelway")

# Reverse mode needs a target; every request is answered or re-pointed by the engine, so
# with lazy connections this address is never contacted.
_UNUSED_TARGET = "reverse:http://127.0.0.1:9"

Ready = Callable[[list[tuple[str, int]]], None]


def _host_regex(glob: str) -> str:
    """A host glob as the regex mitmproxy's allow_hosts matches against `host:port`."""
    return "^" + fnmatch.translate(glob).removeprefix("(?s:").removesuffix(")\\Z") + "(:\\d+)?$"


class _Announce:
    def __init__(self, on_ready: Ready | None) -> None:
        self._on_ready = on_ready

    def running(self) -> None:
        from mitmproxy import ctx

        addresses = [(a[0], a[1]) for a in ctx.master.addons.get("proxyserver").listen_addrs()]
        if self._on_ready is not None:
            self._on_ready(addresses)


class GatewayServer:
    """One gateway process: a mitmproxy master with the modelway addon."""

    _running = False

    def __init__(
        self,
        gateway: Gateway,
        *,
        host: str | None = None,
        port: int | None = None,
        mode: str | None = None,
    ) -> None:
        settings = gateway.config.gateway
        self.gateway = gateway
        self.host = settings.host if host is None else host
        self.port = settings.port if port is None else port
        self.mode = mode or settings.mode
        self.engine = Engine(gateway)
        self.master: DumpMaster | None = None
        self._stopping = False

    def _configure(self, master: DumpMaster) -> None:
        body_limit = max(4 * self.gateway.config.gateway.max_body_bytes, 2**26)
        if self.mode == "forward":
            hosts = [_host_regex(h) for h in self.gateway.intercept_hosts()]
            master.options.update(allow_hosts=hosts)
            self.engine.forward = True
            self.engine.use(self.gateway)
        master.options.update(
            listen_host=self.host,
            listen_port=self.port,
            mode=[_UNUSED_TARGET if self.mode == "reverse" else "regular"],
            connection_strategy="lazy",
            body_size_limit=str(body_limit),
        )

    async def run(self, on_ready: Ready | None = None, handle_signals: bool = True) -> None:
        # mitmproxy keeps its master in a process-wide context: two at once would mix flows.
        if GatewayServer._running:
            raise RuntimeError("a gateway already runs in this process; run one at a time")
        GatewayServer._running = True
        try:
            await self._run(on_ready, handle_signals)
        finally:
            GatewayServer._running = False

    async def _run(self, on_ready: Ready | None, handle_signals: bool) -> None:
        self.master = DumpMaster(options.Options(), with_termlog=False, with_dumper=False)
        self.master.addons.add(ModelwayAddon(self.engine), _Announce(on_ready))
        self._configure(self.master)
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        await self.master.run()

    def request_stop(self) -> None:
        """Begin a graceful stop (idempotent): stop accepting, drain, shut down."""
        if self._stopping:
            return
        self._stopping = True
        asyncio.get_running_loop().create_task(self._stop())

    async def _stop(self) -> None:
        assert self.master is not None
        grace = self.gateway.config.gateway.shutdown_grace_seconds
        logger.info(
            "stopping: no new connections; waiting up to %ss for %d request(s)",
            grace,
            self.engine.inflight,
        )
        proxyserver: Any = self.master.addons.get("proxyserver")
        await proxyserver.servers.update([])
        if not await self.engine.drain(grace):
            logger.warning("grace period over with %d request(s) in flight", self.engine.inflight)
            await self.engine.cut_streams()
        self.master.shutdown()
