"""`GET /metrics`: the Prometheus text of this process, or of every worker (multiprocess).

Served as a `LocalEndpoint` on the gateway's port and, with `gateway.metrics_port`, by a small
aiohttp server of its own on that port (SO_REUSEPORT, so every worker and a reloaded
configuration can bind it; any of them answers with the sum of all workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from modelway.plugins.ops.metrics.families import Families, multiprocess_dir

logger = logging.getLogger("modelway.metrics")


def _render(families: Families) -> bytes:
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(families.registry)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


async def render(families: Families) -> bytes:
    """The exposition text; the workers' files are read off the event loop."""
    if multiprocess_dir() is None:
        return _render(families)
    return await asyncio.to_thread(_render, families)


class MetricsServer:
    """`GET /metrics` on a port of its own."""

    def __init__(self, families: Families, host: str, port: int) -> None:
        self.families = families
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_port=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            logger.error("metrics port %s:%d cannot be bound (%s)", self.host, self.port,
                         exc.strerror)  # fmt: skip
            return
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            with contextlib.suppress(Exception):
                await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await render(self.families)
        return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})
