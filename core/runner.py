"""Runs the gateway on an embedded mitmproxy master, and stops it gracefully.

SIGTERM (or SIGINT) closes the listening socket at once, lets in-flight requests, streams
included, finish within the grace period, then shuts down.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import certs, options
from mitmproxy.addons import (
    core,
    disable_h2c,
    errorcheck,
    next_layer,
    proxyauth,
    proxyserver,
    tlsconfig,
)
from mitmproxy.http import MessageData
from mitmproxy.master import Master

from modelway import logflood
from modelway.addons.gateway import ModelwayAddon
from modelway.engine import Engine, stop_gateway
from modelway.errors import ConfigError
from modelway.runtime import Gateway, load_gateway
from modelway.services import ReloadService

logger = logging.getLogger("modelway")

# Reverse mode needs a target; every request is answered or re-pointed by the engine, so
# with lazy connections this address is never contacted.
_UNUSED_TARGET = "reverse:http://127.0.0.1:9"

Ready = Callable[[list[tuple[str, int]]], None]
CLOSE_WAIT = 2.0
"""At shutdown, how long the client connections left (idle keep-alive ones) may take to
close before the master cancels them."""


async def close_client_connections(proxyserver: Any) -> None:
    """Close every client connection still open, and let each handler end by itself: a
    handler the master cancels instead logs a CancelledError traceback (Python 3.11's
    asyncio stream callback), one per idle keep-alive connection."""
    for handler in list(proxyserver.connections.values()):
        io = handler.transports.get(handler.client)
        if io is not None and io.writer is not None:
            io.writer.close()
    loop = asyncio.get_running_loop()
    until = loop.time() + CLOSE_WAIT
    while proxyserver.connections and loop.time() < until:
        await asyncio.sleep(0.01)


def gateway_addons() -> list[Any]:
    """The mitmproxy addons a gateway needs. mitmdump's master loads about thirty more
    (replay, map-local, cookies, HAR export...): each would see every flow and cost CPU on
    every request, for features a gateway does not offer."""
    return [
        core.Core(),
        disable_h2c.DisableH2C(),
        proxyauth.ProxyAuth(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        startup_error_check(),
    ]


def _own_record(record: logging.LogRecord) -> bool:
    return record.name.startswith(("mitmproxy", "modelway"))


def startup_error_check() -> errorcheck.ErrorCheck:
    """mitmproxy's start-up check (an error logged while starting aborts the start), counting
    only mitmproxy's and modelway's own loggers. Its handler sits on the root logger and sees
    every thread: an unrelated library's error (asyncio reporting a session that someone
    else left unclosed, say) must not stop the gateway. A port in use is still fatal."""
    check = errorcheck.ErrorCheck()
    check.logger.addFilter(_own_record)
    return check


def ca_directory(gateway: Gateway) -> Path:
    """The CA directory, created owner-only (mitmproxy writes the CA files there)."""
    path = Path(gateway.config.gateway.ca_dir).expanduser()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def ensure_ca(gateway: Gateway) -> Path:
    """Create the forward proxy's CA if it does not exist; returns the certificate's path."""
    directory = ca_directory(gateway)
    certs.CertStore.from_store(directory, "mitmproxy", 2048)
    return directory / "mitmproxy-ca-cert.pem"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None


def _host_regex(glob: str) -> str:
    """A host glob as the regex mitmproxy's allow_hosts matches against `host:port`."""
    return "^" + fnmatch.translate(glob).removeprefix("(?s:").removesuffix(")\\Z") + "(:\\d+)?$"


MITMPROXY_DEBUG_CHECK = vars(MessageData).get("__post_init__")
"""mitmproxy's own check (None under `python -O`), as it was before the gateway replaced it."""


def without_debug_checks() -> None:
    """Run mitmproxy's messages as `python -O` would: without its debug-mode type check.

    Unless Python runs with -O, mitmproxy checks the type of every field of every Request and
    Response it builds (`MessageData.__post_init__`, defined under `if __debug__`): tens of
    microseconds per message, two or more per call, on the path of every request and of the
    first streamed event. The gateway keeps its own asserts and drops only that check; mypy
    checks the types of what modelway builds."""
    if MITMPROXY_DEBUG_CHECK is not None:  # the dataclasses' __init__ still calls it
        MessageData.__post_init__ = _unchecked  # type: ignore[method-assign]


def _unchecked(self: object) -> None:
    return None


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
        config_path: str | None = None,
        watch: bool = False,
        extra_plugins: tuple[tuple[str, object], ...] = (),
    ) -> None:
        settings = gateway.config.gateway
        self.gateway = gateway
        self.config_path = config_path
        self.watch = watch
        self.extra_plugins = extra_plugins
        self.host = settings.host if host is None else host
        self.port = settings.port if port is None else port
        self.mode = mode or settings.mode
        self.engine = Engine(gateway)
        self.master: Master | None = None
        self._stopping = False
        self._retired: list[Gateway] = []
        """Configurations replaced by a reload; each is shut down after its grace period, or
        when the gateway stops, whichever comes first."""

    def _configure(self, master: Master) -> None:
        body_limit = max(4 * self.gateway.config.gateway.max_body_bytes, 2**26)
        if self.mode == "forward":
            hosts = [_host_regex(h) for h in self.gateway.intercept_hosts()]
            master.options.update(allow_hosts=hosts)
            auth = self.gateway.config.gateway.proxy_auth
            if auth is not None:
                master.options.update(proxyauth=auth.get_secret_value())
            self.engine.forward = True
            self.engine.use(self.gateway)
        master.options.update(
            listen_host=self.host,
            listen_port=self.port,
            mode=[_UNUSED_TARGET if self.mode == "reverse" else "regular"],
            connection_strategy="lazy",
            body_size_limit=str(body_limit),
            keep_host_header=True,  # the Host the client asked for, not the unused target
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
        without_debug_checks()
        confdir = str(ca_directory(self.gateway))
        self.master = Master(options.Options(confdir=confdir), with_termlog=False)
        self.master.addons.add(*gateway_addons())
        self.master.addons.add(ModelwayAddon(self.engine), _Announce(on_ready))
        self._configure(self.master)
        self.engine.services.provide(ReloadService, ReloadService(self.reload))
        self.engine.path.loopback = _is_loopback(self.host)
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self._reload_logged()))
        watcher = loop.create_task(self._watch()) if self.watch else None
        try:
            with logflood.limited():
                await self.master.run()
        finally:
            if watcher is not None:
                watcher.cancel()

    async def reload(self) -> None:
        """Load the configuration file again and switch to it; raises ConfigError if invalid.

        In-flight requests finish on the configuration they started with; no request is
        dropped. Listen address and mode changes need a restart.
        """
        gateway = load_gateway(self.config_path, self.extra_plugins, self.engine.services)
        self._retired = [g for g in self._retired if not g.hooks.shut_down]
        self._retired.append(self.gateway)
        self.gateway = gateway
        await self.engine.adopt(gateway)

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except ConfigError as exc:
            logger.error("reload refused, keeping the running configuration: %s", exc)

    async def _watch(self, interval: float = 1.0) -> None:
        """Reload when the configuration file changes (polling its modification time)."""
        if self.config_path is None:
            return
        seen = _mtime(self.config_path)
        while True:
            await asyncio.sleep(interval)
            current = _mtime(self.config_path)
            if current != seen:
                seen = current
                await self._reload_logged()

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
        await self._shut_down_retired()
        await close_client_connections(proxyserver)
        self.master.shutdown()

    async def _shut_down_retired(self) -> None:
        """Release what replaced configurations hold (guards' sessions, log files, token
        refreshers): their retirement timers may not have fired yet, and would not now."""
        for old in self._retired:
            await stop_gateway(old)  # a no-op when its retirement timer came first
        self._retired.clear()
