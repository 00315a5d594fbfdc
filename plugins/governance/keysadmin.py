"""The admin API of the `keys` plugin (admin endpoints: they need an admin key).

- `POST /modelway/keys` `{consumer, kind, team, name, models, routes, limits, budget,
  metadata, expires}`: create a key; 201 with the key itself, shown this once.
- `GET /modelway/keys`: every key (configured and created), without secrets or hashes.
- `GET /modelway/keys/<id>`, `DELETE /modelway/keys/<id>` (revoke),
  `POST /modelway/keys/<id>/rotate` `{grace_seconds}`: a new key with the same grants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelway import jsonx
from modelway.errors import GatewayError, bad_request
from modelway.ingress import LocalAnswer, LocalEndpoint
from modelway.plugins.governance.registry import KeyRegistry
from modelway.state import StateUnavailable

if TYPE_CHECKING:
    from modelway.context import RequestContext

PATH = "/modelway/keys"


def _registry(ctx: RequestContext) -> KeyRegistry:
    assert ctx.gateway is not None
    return ctx.gateway.services.require(KeyRegistry)


def _json(status: int, value: Any) -> LocalAnswer:
    return LocalAnswer(status, jsonx.dumps(value))


def _body(ctx: RequestContext) -> dict[str, Any]:
    if not ctx.body.strip():
        return {}
    try:
        data = jsonx.loads(ctx.body)
    except ValueError:
        raise bad_request("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    return data


def _key_id(ctx: RequestContext, suffix: str = "") -> str:
    rest = ctx.path[len(PATH) + 1 :]
    key_id = rest.removesuffix(suffix) if suffix else rest
    if not key_id or "/" in key_id:
        raise GatewayError(404, f"unknown path {ctx.path}", code="unknown_url")
    return key_id


def _unavailable() -> GatewayError:
    return GatewayError(503, "the state store is unavailable", "server_error", "state_unavailable")


async def create(ctx: RequestContext) -> LocalAnswer:
    try:
        secret, record = await _registry(ctx).create(_body(ctx))
    except StateUnavailable:
        raise _unavailable() from None
    return _json(201, {"key": secret, **record.public()})


async def listing(ctx: RequestContext) -> LocalAnswer:
    try:
        records = await _registry(ctx).all()
    except StateUnavailable:
        raise _unavailable() from None
    return _json(200, {"keys": [r.public() for r in records]})


async def show(ctx: RequestContext) -> LocalAnswer:
    try:
        record = await _registry(ctx).by_id(_key_id(ctx))
    except StateUnavailable:
        raise _unavailable() from None
    if record is None:
        raise GatewayError(404, f"no key has the id '{_key_id(ctx)}'", code="key_not_found")
    return _json(200, record.public())


async def revoke(ctx: RequestContext) -> LocalAnswer:
    try:
        record = await _registry(ctx).revoke(_key_id(ctx))
    except StateUnavailable:
        raise _unavailable() from None
    return _json(200, record.public())


async def rotate(ctx: RequestContext) -> LocalAnswer:
    if not ctx.path.endswith("/rotate"):
        raise GatewayError(404, f"unknown path {ctx.path}", code="unknown_url")
    grace = _body(ctx).get("grace_seconds", 0)
    if not isinstance(grace, int | float) or isinstance(grace, bool) or grace < 0:
        raise bad_request("grace_seconds must be a number of seconds >= 0")
    try:
        secret, record = await _registry(ctx).rotate(_key_id(ctx, "/rotate"), float(grace))
    except StateUnavailable:
        raise _unavailable() from None
    return _json(201, {"key": secret, **record.public()})


def endpoints() -> list[LocalEndpoint]:
    one = PATH + "/"
    return [
        LocalEndpoint("POST", PATH, create, "admin.keys.create", admin=True),
        LocalEndpoint("GET", PATH, listing, "admin.keys.list", admin=True),
        LocalEndpoint("GET", one, show, "admin.keys.show", admin=True, prefix=True),
        LocalEndpoint("DELETE", one, revoke, "admin.keys.revoke", admin=True, prefix=True),
        LocalEndpoint("POST", one, rotate, "admin.keys.rotate", admin=True, prefix=True),
    ]
