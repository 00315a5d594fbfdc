"""Built-in plugin `keys`: consumers, teams and their API keys; 401 and 403 in the client's API.

Every request needs a key, in its API's own header (`Authorization: Bearer`, `x-api-key`,
`x-goog-api-key`, or Google's `?key=`): one of `plugins.keys.keys` (YAML holds only `sha256:`
hashes), one created at run time (`modelway keys create`, `POST /modelway/keys`), or one of
`gateway.api_keys` (a key without consumer or team). A missing, unknown, expired or revoked
key is a 401; a model or route the key or its team may not use is a 403. The caller becomes
`ctx.principal`, and the access log names its key id, consumer and team.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from modelway import hookimpl
from modelway.context import Principal
from modelway.plugins.governance.errors import forbidden, unauthorized
from modelway.plugins.governance.keysadmin import endpoints
from modelway.plugins.governance.records import KeyConfig, KeyRecord, Team, digest
from modelway.plugins.governance.registry import Access, KeyRegistry
from modelway.statestore import store_of

if TYPE_CHECKING:
    from modelway.context import Attempt, RequestContext
    from modelway.ingress import LocalEndpoint
    from modelway.runtime import Gateway

GATEWAY_KEY_ID = "gateway"


class Settings(BaseModel):
    """`plugins: {keys: {...}}`."""

    model_config = ConfigDict(extra="forbid")
    teams: dict[str, Team] = Field(default_factory=dict)
    keys: list[KeyConfig] = Field(default_factory=list)
    cache_seconds: float = Field(0.5, ge=0, le=60)
    """How long a created key's record is reused before the store is asked again (so a
    revocation takes effect everywhere within this time)."""


def registry_of(gateway: Gateway) -> KeyRegistry:
    return gateway.services.setdefault(KeyRegistry, KeyRegistry)


def _check(settings: Settings, gateway: Gateway) -> None:
    problems = []
    seen: dict[str, int] = {}
    for index, key in enumerate(settings.keys):
        if key.team is not None and key.team not in settings.teams:
            known = ", ".join(sorted(settings.teams)) or "none defined"
            problems.append(((*_loc(index), "team"), f"unknown team '{key.team}' ({known})"))
        if key.hash in seen or (key.id or "") in seen:
            problems.append((_loc(index), "two keys have the same hash or id"))
        seen[key.hash] = seen[key.id or ""] = index
    if problems:
        raise gateway.source.error(problems)


def _loc(index: int) -> tuple[str | int, ...]:
    return ("plugins", "keys", "keys", index)


def _principal(record: KeyRecord, access: Access) -> Principal:
    team = access.team
    metadata = {**(team.metadata if team else {}), **record.metadata}
    return Principal(record.id or "", record.consumer, record.team, record.kind, record.name,
                     metadata, access)


def _refusal(record: KeyRecord | None) -> str | None:
    if record is None:
        return "invalid_api_key"
    if record.revoked is None and record.expires is None:
        return None
    state = record.state(datetime.now(UTC))
    return None if state == "active" else f"{state}_api_key"


def _accept(ctx: RequestContext, registry: KeyRegistry, record: KeyRecord | None) -> Principal:
    """The caller of an active key; a 401 for an unknown, expired or revoked one."""
    refusal = _refusal(record)
    if refusal is not None or record is None:
        ctx.annotations["auth"] = refusal
        raise unauthorized(_MESSAGES[refusal or "invalid_api_key"], refusal or "")
    return _principal(record, Access(record, registry.team(record)))


_MESSAGES = {
    "invalid_api_key": "the API key is not valid for this gateway",
    "expired_api_key": "the API key has expired",
    "revoked_api_key": "the API key has been revoked",
}


class KeysPlugin:
    """Authenticates every request against the key registry."""

    Settings = Settings

    def __init__(self) -> None:
        self._gateway_keys: list[bytes] = []

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        settings: Settings = gateway.plugin_settings("keys") or Settings()
        _check(settings, gateway)
        registry_of(gateway).configure(
            store_of(gateway), settings.teams, settings.keys, settings.cache_seconds
        )
        self._gateway_keys = [
            k.get_secret_value().encode() for k in gateway.config.gateway.api_keys
        ]

    @hookimpl
    def modelway_local_endpoints(self) -> list[LocalEndpoint]:
        return endpoints()

    @hookimpl
    def modelway_authenticate(self, ctx: RequestContext) -> Principal | Awaitable[Principal]:
        """At once for a configured key or a fresh cached one; else after the store's answer."""
        secret = ctx.client.api_key
        if not secret:
            raise unauthorized(
                "an API key is required: send it as 'Authorization: Bearer <key>' "
                "(or in x-api-key / x-goog-api-key)",
                "missing_api_key",
            )
        if any(hmac.compare_digest(secret.encode(), key) for key in self._gateway_keys):
            return Principal(GATEWAY_KEY_ID)
        assert ctx.gateway is not None
        registry = registry_of(ctx.gateway)
        record = registry.known(digest(secret))
        if record is not None:
            return _accept(ctx, registry, record)
        return self._lookup(ctx, registry, secret)

    async def _lookup(self, ctx: RequestContext, registry: KeyRegistry, secret: str) -> Principal:
        return _accept(ctx, registry, await registry.find(secret))

    @hookimpl
    def modelway_admit(self, ctx: RequestContext, attempt: Attempt | None) -> None:
        access = ctx.principal.grants if ctx.principal else None
        if attempt is not None or not isinstance(access, Access):
            return
        route = ctx.route.name if ctx.route else ""
        for who, grants in (("key", access.key), ("team", access.team)):
            if grants is None:
                continue
            if not grants.allows_model(ctx.model):
                model = ctx.model or "(none)"
                raise forbidden(f"this {who} may not use the model '{model}'", "model_not_allowed")
            if not grants.allows_route(route):
                raise forbidden(f"this {who} may not use the route '{route}'", "route_not_allowed")

    @hookimpl(tryfirst=True)
    def modelway_request_done(self, ctx: RequestContext, record: dict[str, object]) -> None:
        principal = ctx.principal
        if principal is not None:
            record["key_id"] = principal.key_id
            record["consumer"] = principal.consumer
            record["team"] = principal.team
