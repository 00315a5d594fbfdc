"""Consumers, teams and keys as configured and as stored, and what each may do (grants).

A key belongs to a consumer (a user or a service) and, optionally, a team. Both a key and its
team carry grants: model and route globs, rate limits, USD budgets and metadata; a request
must pass both. Keys are never kept in clear: a record holds `sha256:<hex>` of the secret.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FailMode = Literal["open", "closed"]
KEY_PREFIX = "mw-"
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_WINDOW = re.compile(r"^(day|week|month|[1-9][0-9]*h)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(Strict):
    """Rate limits over a minute: requests, and tokens (input plus output)."""

    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)
    on_store_error: FailMode | None = None
    """When the state store is down: `open` serves and counts in this process, `closed`
    refuses with 503 (default: the plugin's `on_store_error`)."""


class Budget(Strict):
    """At most `usd` of spend per window: `day`, `week` (from Monday), `month`, or `<N>h`
    (UTC, resetting on schedule)."""

    usd: float = Field(gt=0)
    window: str = "month"
    on_store_error: FailMode | None = None

    @field_validator("window")
    @classmethod
    def _window_form(cls, value: str) -> str:
        if not _WINDOW.match(value):
            raise ValueError("window must be day, week, month or <N>h (e.g. 6h)")
        return value


class Grants(Strict):
    """What a key or a team may do."""

    models: list[str] = Field(default_factory=lambda: ["*"])
    """Model globs the client may ask for."""
    routes: list[str] = Field(default_factory=lambda: ["*"])
    """Route-name globs."""
    limits: Limits | None = None
    budget: Budget | list[Budget] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def budgets(self) -> list[Budget]:
        if self.budget is None:
            return []
        return self.budget if isinstance(self.budget, list) else [self.budget]

    def allows_model(self, model: str | None) -> bool:
        if "*" in self.models:
            return True
        return bool(model) and any(fnmatch.fnmatchcase(model or "", g) for g in self.models)

    def allows_route(self, route: str) -> bool:
        if "*" in self.routes:
            return True
        return any(fnmatch.fnmatchcase(route, glob) for glob in self.routes)


class Team(Grants):
    """`plugins.keys.teams.<name>`."""


class KeyConfig(Grants):
    """A key defined in YAML (`plugins.keys.keys[]`): its hash, never the key."""

    hash: str
    """`sha256:<64 hex>` of the key (`modelway keys hash` prints it)."""
    id: str | None = None
    """The key's public id (default: `key_` and the first 12 hex digits of its hash)."""
    consumer: str
    kind: Literal["user", "service"] = "user"
    team: str | None = None
    name: str | None = None
    expires: datetime | None = None

    @field_validator("hash")
    @classmethod
    def _hash_form(cls, value: str) -> str:
        value = value.strip().lower()
        if not _HASH.match(value):
            raise ValueError("hash must be 'sha256:' and 64 hex digits (modelway keys hash)")
        return value

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _default_id(self) -> KeyConfig:
        if self.id is None:
            self.id = "key_" + self.hash[7:19]
        return self

    @property
    def digest(self) -> str:
        return self.hash[7:]


class KeyRecord(KeyConfig):
    """A key as the gateway knows it: configured, or created at run time (stored)."""

    source: Literal["config", "api"] = "config"
    created: datetime | None = None
    revoked: datetime | None = None

    def state(self, now: datetime | None = None) -> str:
        """`active`, `revoked` or `expired`."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= (now or datetime.now(UTC)):
            return "expired"
        return "active"

    def public(self) -> dict[str, Any]:
        """The record as the admin API shows it (the hash is not a secret, but not needed)."""
        data = self.model_dump(mode="json", exclude={"hash"}, exclude_none=True)
        data["state"] = self.state()
        return data


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh secret key (shown once)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_id() -> str:
    return "key_" + secrets.token_hex(6)
