"""Built-in plugin `responses_api`: the OpenAI Responses API, served for every backend.

`POST /v1/responses` (streamed or not), `GET` / `DELETE /v1/responses/{id}` (with
`stream=true` replay), `GET /v1/responses/{id}/input_items` and `POST .../cancel`. OpenAI
and Azure backends that have the Responses API get the client's own body (the same-API
lane); every other backend gets it translated through the hub. Responses the gateway makes
are stored (see `store.py`; `store: false` stores nothing), so `previous_response_id` and
`GET` work for every backend; a response that an OpenAI backend keeps itself is continued
and read there.

Settings (`plugins: {responses_api: {...}}`): `ttl_seconds` (how long a stored response is
kept, default 30 days), `max_responses` and `max_bytes` (the bound on what one gateway
process keeps; the oldest go first).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.context import Attempt, Plan, RequestContext
from modelway.ingress import IngressAPI
from modelway.plugins.ingress.responses.api import ResponsesAPI
from modelway.plugins.ingress.responses.call import ResponsesCall
from modelway.plugins.ingress.responses.records import store_for
from modelway.runtime import Gateway, Route

__all__ = ["ResponsesAPI", "ResponsesPlugin"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_seconds: float | None = Field(30 * 86400, gt=0)
    """How long a stored response is kept (None: until the bound evicts it)."""
    max_responses: int = Field(10_000, ge=1)
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)


class ResponsesPlugin:
    """One per gateway."""

    Settings = Settings

    def __init__(self) -> None:
        self.api = ResponsesAPI()

    @hookimpl
    def modelway_ingress_apis(self) -> list[IngressAPI]:
        return [self.api]

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        settings = gateway.plugin_settings("responses_api") or Settings()
        store_for(gateway).configure(
            settings.ttl_seconds, settings.max_responses, settings.max_bytes
        )

    @hookimpl(tryfirst=True)
    def modelway_plan(self, ctx: RequestContext, route: Route) -> Plan | None:
        """A request that continues a response an OpenAI backend keeps goes there only."""
        call = ctx.call
        if not isinstance(call, ResponsesCall) or call.pinned is None or ctx.gateway is None:
            return None
        name, model = call.pinned
        backend = ctx.gateway.backends[name]
        target = next((t for t in route.targets if t.backend is backend), None)
        return Plan([Attempt(backend, target.model if target else model)], max_attempts=1)
