"""The key registry: keys from the configuration and keys created at run time, found by hash.

Configured keys live in memory. Created keys live in the state store (`keys:h:<sha256>` holds
the record, `keys:id:<id>` the hash), so every worker and instance sharing the store sees a
new key at once; a record found in the store is cached for `cache_seconds` (0.5 s by
default), so a revoked key stops working everywhere within that time. While the store is
down, cached records still serve; an uncached created key cannot be checked (503).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from modelway.errors import GatewayError, bad_request
from modelway.plugins.governance.errors import store_down
from modelway.plugins.governance.records import (
    KeyConfig,
    KeyRecord,
    Team,
    digest,
    new_id,
    new_key,
)
from modelway.state import StateStore, StateUnavailable

HASH_PREFIX = "keys:h:"
ID_PREFIX = "keys:id:"


@dataclass(frozen=True, slots=True)
class Access:
    """A principal's grants: its key's and its team's (`Principal.grants`)."""

    key: KeyRecord
    team: Team | None


class KeyRegistry:
    """Every key the gateway accepts, configured or created."""

    def __init__(self) -> None:
        self.store: StateStore | None = None
        self.cache_seconds = 0.5
        self.teams: dict[str, Team] = {}
        self._configured: dict[str, KeyRecord] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._cache: dict[str, tuple[KeyRecord, float]] = {}

    def configure(
        self, store: StateStore, teams: dict[str, Team], keys: list[KeyConfig], cache: float
    ) -> None:
        self.store, self.teams, self.cache_seconds = store, dict(teams), cache
        records = [KeyRecord(**k.model_dump(), source="config") for k in keys]
        self._configured = {r.digest: r for r in records}
        self._by_id = {r.id or "": r for r in records}
        self._cache.clear()

    def _store(self) -> StateStore:
        assert self.store is not None, "the keys plugin is not configured"
        return self.store

    # --------------------------------------------------------------------------- lookups

    def known(self, hashed: str) -> KeyRecord | None:
        """The record of a key's hash when it is at hand (configured, or cached and still
        fresh) without asking the store; else None (`find` asks)."""
        found = self._configured.get(hashed)
        if found is not None:
            return found
        cached = self._cache.get(hashed)
        if cached is not None and time.monotonic() - cached[1] < self.cache_seconds:
            return cached[0]
        return None

    async def find(self, secret: str) -> KeyRecord | None:
        """The record of a client's key, or None when no such key exists."""
        hashed = digest(secret)
        found = self.known(hashed)
        if found is not None:
            return found
        cached = self._cache.get(hashed)
        now = time.monotonic()
        try:
            raw = await self._store().get(HASH_PREFIX + hashed)
        except StateUnavailable:
            if cached is not None:
                return cached[0]
            raise store_down("this API key") from None
        if raw is None:
            self._cache.pop(hashed, None)
            return None
        record = KeyRecord.model_validate_json(raw)
        self._cache[hashed] = (record, now)
        return record

    async def by_id(self, key_id: str) -> KeyRecord | None:
        if key_id in self._by_id:
            return self._by_id[key_id]
        hashed = await self._store().get(ID_PREFIX + key_id)
        if hashed is None:
            return None
        raw = await self._store().get(HASH_PREFIX + hashed.decode())
        return None if raw is None else KeyRecord.model_validate_json(raw)

    async def all(self) -> list[KeyRecord]:
        found = list(self._configured.values())
        for name in sorted(await self._store().keys(HASH_PREFIX)):
            raw = await self._store().get(name)
            if raw is not None:
                found.append(KeyRecord.model_validate_json(raw))
        return found

    def team(self, record: KeyRecord) -> Team | None:
        return self.teams.get(record.team) if record.team else None

    # --------------------------------------------------------------------------- changes

    async def create(self, fields: dict[str, Any]) -> tuple[str, KeyRecord]:
        """A new key from admin-API fields; the secret is returned once, stored hashed."""
        secret = new_key()
        fields = {k: v for k, v in fields.items() if k not in ("hash", "id", "source")}
        try:
            record = KeyRecord.model_validate(
                {**fields, "hash": "sha256:" + digest(secret), "id": new_id(), "source": "api",
                 "created": datetime.now(UTC)}
            )
        except ValueError as exc:
            raise bad_request(f"invalid key fields: {_first_error(exc)}") from None
        if record.team and record.team not in self.teams:
            known = ", ".join(sorted(self.teams)) or "none"
            raise bad_request(f"unknown team '{record.team}' (teams: {known})", param="team")
        await self._save(record)
        return secret, record

    async def revoke(self, key_id: str) -> KeyRecord:
        record = await self._changeable(key_id)
        record.revoked = record.revoked or datetime.now(UTC)
        await self._save(record)
        return record

    async def rotate(self, key_id: str, grace_seconds: float) -> tuple[str, KeyRecord]:
        """A new key with the same grants; the old one is revoked, or expires after grace."""
        old = await self._changeable(key_id)
        fields = old.model_dump(exclude={"hash", "id", "source", "created", "revoked"})
        secret, record = await self.create(fields)
        if grace_seconds > 0:
            old.expires = datetime.now(UTC) + timedelta(seconds=grace_seconds)
        else:
            old.revoked = datetime.now(UTC)
        await self._save(old)
        return secret, record

    async def _changeable(self, key_id: str) -> KeyRecord:
        record = await self.by_id(key_id)
        if record is None:
            raise GatewayError(404, f"no key has the id '{key_id}'", code="key_not_found")
        if record.source == "config":
            raise GatewayError(
                409,
                f"key '{key_id}' is defined in the configuration: change it there and reload",
                code="key_in_config",
            )
        return record

    async def _save(self, record: KeyRecord) -> None:
        store = self._store()
        await store.set(HASH_PREFIX + record.digest, record.model_dump_json().encode())
        await store.set(ID_PREFIX + (record.id or ""), record.digest.encode())
        self._cache.pop(record.digest, None)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)
