"""The PII guard's configuration: plugin-wide settings and the route policy's section."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelway.errors import GatewayError
from modelway.plugins.policies.pii_guard.engine import NER_ENTITIES, PATTERN_ENTITIES
from modelway.plugins.policies.pii_guard.stream import Cluster

ENTITY_NAME = r"^[A-Z][A-Z0-9_]*$"
Action = Literal["mask", "reject"]
Stage = Literal["request", "response"]


class Settings(BaseModel):
    """Plugin-wide settings: the worker pool and the NER model."""

    model_config = ConfigDict(extra="forbid")
    workers: int = Field(2, ge=1, le=64)
    executor: Literal["process", "thread"] = "process"
    ner_model: str | None = "auto"
    """A spaCy model package name, `auto` (the first installed English model), or null."""
    timeout_seconds: float = Field(30.0, gt=0)
    """Longest wait for an analysis (queueing included); past it the request fails (503)."""


class CustomRecognizer(BaseModel):
    """A named regex; matched like Presidio's own patterns (case-insensitive)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=ENTITY_NAME)
    regex: str
    score: float = Field(0.9, ge=0, le=1)
    max_length: int = Field(64, ge=1, le=10_000)
    """The longest text a match may span: how much a stream may hold back for it."""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            import regex  # what Presidio matches with; installed with it
        except ImportError:
            regex = re
        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class StageConfig(BaseModel):
    """What to look for in one direction and what to do when found."""

    model_config = ConfigDict(extra="forbid")
    entities: list[str] = Field(default_factory=list)
    action: Action = "mask"
    actions: dict[str, Action] = Field(default_factory=dict)
    reject_status: int = Field(400, ge=400, le=599)
    reject_message: str = "personal data found: {entities}"

    @property
    def analysed(self) -> tuple[str, ...]:
        return tuple(sorted({*self.entities, *self.actions}))

    def rejects(self, cluster: Cluster) -> bool:
        return any(self.actions.get(e, self.action) == "reject" for e in cluster.entities)

    def error(self, counts: dict[str, int]) -> GatewayError:
        message = self.reject_message.replace("{entities}", ", ".join(sorted(counts)))
        return GatewayError(self.reject_status, message, "invalid_request_error", "pii_detected")


class PiiGuardConfig(BaseModel):
    """The route policy's section."""

    model_config = ConfigDict(extra="forbid")
    language: str = "en"
    score_threshold: float = Field(0.4, ge=0, le=1)
    custom: list[CustomRecognizer] = Field(default_factory=list)
    max_lengths: dict[str, int] = Field(default_factory=dict)
    phone_regions: list[str] = Field(default_factory=list)
    """Regions whose national phone formats are recognised (Presidio's eight when empty);
    numbers written with a country code (+44 ...) are found whatever the list."""
    request: StageConfig | None = None
    response: StageConfig | None = None

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        try:
            import phonenumbers  # installed with presidio-analyzer
        except ImportError:
            return value
        unknown = [r for r in value if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(
                f"unknown phone regions: {', '.join(unknown)} (ISO 3166 codes: US, GB)"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> PiiGuardConfig:
        if self.request is None and self.response is None:
            raise ValueError("set `request`, `response` or both")
        builtin = set(PATTERN_ENTITIES) | set(NER_ENTITIES)
        clash = [c.name for c in self.custom if c.name in builtin]
        if clash:
            raise ValueError(f"custom names clash with built-in entities: {', '.join(clash)}")
        known = builtin | {c.name for c in self.custom}
        for where, stage in (("request", self.request), ("response", self.response)):
            if stage is not None and not stage.analysed:
                raise ValueError(f"{where}: list the entities to look for")
        named = [e for s in (self.request, self.response) if s for e in s.analysed]
        unknown = sorted({e for e in [*named, *self.max_lengths] if e not in known})
        if unknown:
            raise ValueError(
                f"unknown entities: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return self

    def stage(self, name: Stage) -> StageConfig | None:
        return self.request if name == "request" else self.response
