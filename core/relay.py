"""A small HTTP server on mitmproxy's own event loop that serves streamed answers.

mitmproxy can stream a response to the client only when it reads it from an upstream, not
when an addon makes it. So a streaming request is pointed at this server (with a one-time
token); the handler makes the upstream calls itself and writes the client's stream as it is
produced. Only 127.0.0.1 listens, and an unknown token gets a 404.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[Any, web.Request], Awaitable[web.StreamResponse]]


class RelayServer:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._jobs: dict[str, Any] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=1024)
        app.router.add_post("/{token}", self._handle)
        # The engine applies the gateway's grace period before stopping the relay, so whatever
        # is still streaming then is cut off promptly rather than after aiohttp's 60 s default.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.25
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def register(self, job: Any) -> str:
        """Park a job until mitmproxy's request for it arrives; returns the URL path."""
        token = secrets.token_urlsafe(18)
        self._jobs[token] = job
        return f"/{token}"

    def forget(self, path: str) -> None:
        self._jobs.pop(path.lstrip("/"), None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        job = self._jobs.pop(request.match_info["token"], None)
        if job is None:
            return web.Response(status=404)
        return await self._handler(job, request)
