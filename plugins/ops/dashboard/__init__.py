"""Built-in plugin `dashboard`: a live page at `/modelway/` (opt-in: `plugins: [dashboard]`).

The page shows the routes and their backends with health and ejections (plugin `health`), the
A/B and canary variants of each route side by side: requests, errors, p50/p95 latency, time to
first token, tokens and cost (plugin `stats`), failovers and guard decisions per minute over
the last hour as small inline SVG charts, and the last errors. It polls
`GET /modelway/dashboard/data` (JSON) every `poll_seconds`, and its first view is embedded in
the page, so it renders at once. The HTML, script and style are packaged files (`static/`):
no CDN, no build step, nothing from the internet.

Every dashboard path is an admin endpoint: it needs an admin key when keys are configured. A
browser gives the key as the password of the Basic-auth prompt the page answers with (any user
name); with no keys at all the page is served on a loopback listener only.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl, jsonx
from modelway.errors import GatewayError
from modelway.ingress import LocalAnswer, LocalEndpoint
from modelway.plugins.ops.dashboard.data import snapshot
from modelway.plugins.ops.dashboard.timeline import Timeline

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway

NAME = "dashboard"
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
NO_STORE = {"cache-control": "no-store"}


class Settings(BaseModel):
    """`plugins: {dashboard: {...}}`."""

    model_config = ConfigDict(extra="forbid")
    poll_seconds: float = Field(2.0, ge=0.2, le=600)
    """How often the page asks for fresh numbers."""


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def timeline_of(gateway: Gateway) -> Timeline:
    return gateway.services.setdefault(Timeline, Timeline)


async def _data(ctx: RequestContext) -> bytes:
    assert ctx.gateway is not None
    return jsonx.dumps(await snapshot(ctx.gateway, timeline_of(ctx.gateway)))


async def page(ctx: RequestContext) -> LocalAnswer:
    assert ctx.gateway is not None
    settings: Settings = ctx.gateway.plugin_settings(NAME) or Settings()
    initial = (await _data(ctx)).replace(b"</", b"<\\/")  # safe inside a <script> element
    html = _asset("index.html")
    html = html.replace(b"{{POLL_MS}}", str(int(settings.poll_seconds * 1000)).encode())
    html = html.replace(b"{{INITIAL}}", initial)
    return LocalAnswer(200, html, "text/html; charset=utf-8", dict(NO_STORE))


async def data(ctx: RequestContext) -> LocalAnswer:
    return LocalAnswer(200, await _data(ctx), headers=dict(NO_STORE))


async def asset(ctx: RequestContext) -> LocalAnswer:
    name = ctx.path.rsplit("/", 1)[-1]
    if name not in ASSETS:
        raise GatewayError(404, f"unknown path {ctx.path}", code="unknown_url")
    return LocalAnswer(200, _asset(name), ASSETS[name], {"cache-control": "max-age=300"})


class DashboardPlugin:
    """Keeps the last hour's timeline and serves the page, its assets and its data."""

    Settings = Settings

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        timeline_of(gateway)

    @hookimpl
    def modelway_local_endpoints(self) -> list[LocalEndpoint]:
        return [
            LocalEndpoint("GET", "/modelway", page, "dashboard", admin=True, browser=True),
            LocalEndpoint("GET", "/modelway/dashboard/data", data, "dashboard.data",
                          admin=True, browser=True),
            LocalEndpoint("GET", "/modelway/dashboard/assets/", asset, "dashboard.asset",
                          admin=True, browser=True, prefix=True),
        ]  # fmt: skip

    @hookimpl
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        if ctx.gateway is not None and ctx.route is not None:
            timeline_of(ctx.gateway).record(ctx)
