"""The modelway mitmproxy addon: every flow goes to the engine, nothing else happens here.

`modelway run` adds it to an embedded master. It also loads into plain mitmproxy:

    mitmdump --mode reverse:http://127.0.0.1:9 --set connection_strategy=lazy \\
        -s "$(python -c 'import modelway.addons.gateway as m; print(m.__file__)')" \\
        --set modelway_config=config/gateway.yaml
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import server_hooks

from modelway import protocolerrors, protocolshape
from modelway.engine import Engine
from modelway.errors import ConfigError
from modelway.ingress import IngressAPI
from modelway.runtime import load_gateway

logger = logging.getLogger("modelway")


class ModelwayAddon:
    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine
        self._from_option = engine is None

    def load(self, loader: Loader) -> None:
        protocolerrors.install()
        protocolshape.use_apis(loader.master.options, self._apis)
        loader.add_option(
            "modelway_config",
            str,
            "",
            "modelway YAML configuration file (empty: the packaged default).",
        )

    def _apis(self) -> Sequence[IngressAPI]:
        """The APIs whose shapes mitmproxy's own error answers take (`protocolshape`)."""
        return self.engine.gateway.apis if self.engine is not None else ()

    def configure(self, updated: set[str]) -> None:
        if not self._from_option or (self.engine is not None and "modelway_config" not in updated):
            return
        try:
            gateway = load_gateway(ctx.options.modelway_config or None)
        except ConfigError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        if self.engine is None:
            self.engine = Engine(gateway)
        else:
            asyncio.get_running_loop().create_task(self.engine.adopt(gateway))

    async def running(self) -> None:
        assert self.engine is not None
        self.engine.clients.attach(ctx.master.addons.get("proxyserver"))
        await self.engine.start()

    async def done(self) -> None:
        if self.engine is not None:
            await self.engine.stop()

    def client_connected(self, client: connection.Client) -> None:
        assert self.engine is not None
        self.engine.clients.connected(client)

    def client_disconnected(self, client: connection.Client) -> None:
        assert self.engine is not None
        self.engine.clients.disconnected(client)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """Forward mode: a tunnel is the client's own traffic; no client timeout applies."""
        assert self.engine is not None
        self.engine.clients.request_read(flow.client_conn)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        assert self.engine is not None
        if not self.engine.allows_connection(data.server.address):
            data.server.error = "the gateway does not connect to this address"

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        assert self.engine is not None
        self.engine.request_headers(flow)

    async def request(self, flow: http.HTTPFlow) -> None:
        assert self.engine is not None
        await self.engine.request(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        assert self.engine is not None
        self.engine.response_headers(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        assert self.engine is not None
        self.engine.done(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        assert self.engine is not None
        self.engine.done(flow)


addons = [ModelwayAddon()]
