"""An example third-party modelway plugin that uses only the public API (`modelway`).

Enabled with `plugins: {hello: {header_value: abc}}`, it adds `x-hello: abc` to every
request sent upstream and `"hello": <greeting>` to every access-log record.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from modelway import Attempt, RequestContext, UpstreamRequest, hookimpl


class Settings(BaseModel):
    """The `plugins.hello` section."""

    model_config = ConfigDict(extra="forbid")
    header_value: str
    greeting: str = "hello"


class HelloPlugin:
    """Instantiated once per gateway, so its settings are never shared between gateways."""

    Settings = Settings

    def __init__(self) -> None:
        self.settings: Settings | None = None

    @hookimpl
    def modelway_configure(self, gateway: Any) -> None:
        self.settings = gateway.plugin_settings("hello")

    @hookimpl
    def modelway_upstream_request(
        self, ctx: RequestContext, attempt: Attempt, request: UpstreamRequest
    ) -> None:
        if self.settings is not None:
            request.headers["x-hello"] = self.settings.header_value

    @hookimpl
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        if self.settings is not None:
            record["hello"] = self.settings.greeting
