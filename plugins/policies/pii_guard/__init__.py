"""Built-in plugin `pii_guard`: Presidio PII detection on prompts and answers, mask or reject.

Route policy `pii_guard`:

    policies:
      pii_guard:
        language: en
        score_threshold: 0.4
        phone_regions: [US, GB]      # national phone formats read (default: Presidio's 8)
        custom: [{name: EMPLOYEE_ID, regex: "E-\\\\d{6}", score: 0.9, max_length: 8}]
        request:
          entities: [CREDIT_CARD, EMAIL_ADDRESS, PHONE_NUMBER, EMPLOYEE_ID]
          action: mask                 # or reject; the default for the listed entities
          actions: {US_SSN: reject}    # per-entity overrides (analysed even if not listed)
          reject_status: 400
          reject_message: "personal data found: {entities}"
        response:
          entities: [EMAIL_ADDRESS, PHONE_NUMBER]

`mask` replaces each finding with `<ENTITY_TYPE>`; `reject` answers the configured status and
message in the client's API error shape, and the upstream receives nothing. The request guard
reads every text a prompt carries: message contents (strings and text parts; not images or
audio), the string values of tool-call arguments (parsed as JSON and written back as JSON), and
embeddings input. The response guard masks `message.content` of non-streamed answers (a reject
becomes the error the client gets) and `delta.content` of streamed ones without ever
releasing part of an entity (see `pii_stream`); in a stream, reject ends it with an error event.
Token logprobs are dropped from guarded answers, since they repeat the raw text.

Entities: those of `pii_engine.PATTERN_ENTITIES` (CREDIT_CARD with its Luhn check, US_SSN,
EMAIL_ADDRESS, PHONE_NUMBER, IBAN_CODE, IP_ADDRESS, URL, ...), named `custom` regexes, and the
NER ones below. Without an NER model Presidio cannot use context words, so the weak
US_BANK_NUMBER, US_DRIVER_LICENSE and US_PASSPORT patterns score under the default threshold.

Each decision is appended to the access log's `extra.guards`: the guard, stage, action and the
entity types with their counts, never the values.

Plugin settings (`plugins: {pii_guard: {workers: 2, executor: process, ner_model: auto}}`): the
analysis runs in a worker pool (see `pii_engine`). PERSON, LOCATION, ORGANIZATION and NRP need a
spaCy NER model: `pip install 'modelway[ner]'` installs one; without it these entities are
skipped with a warning and the pattern entities still work.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelway import Decision, Policy, PolicySpec, hookimpl
from modelway.errors import ConfigError, GatewayError
from modelway.plugins.policies.pii_guard.engine import (
    NER_ENTITIES,
    PATTERN_ENTITIES,
    AnalyzerPool,
    CustomPattern,
    EngineSpec,
    analyze_texts,
    installed_ner_model,
    stream_step,
)
from modelway.plugins.policies.pii_guard.stream import Cluster, MaskingStreamFilter, Step, mask_text

if TYPE_CHECKING:
    from modelway.canonical import CanonicalResponse
    from modelway.context import RequestContext
    from modelway.extension import StreamFilter
    from modelway.runtime import Gateway

logger = logging.getLogger("modelway.pii_guard")

NAME = "pii_guard"
ENTITY_NAME = r"^[A-Z][A-Z0-9_]*$"
Action = Literal["mask", "reject"]
Stage = Literal["request", "response"]


# --------------------------------------------------------------------------- configuration


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


# --------------------------------------------------------------------------- text slots


@dataclass(slots=True)
class Slot:
    """One string inside a JSON body that the guard may replace."""

    holder: Any
    key: Any
    changed: Callable[[], None] | None = None

    def get(self) -> str:
        value = self.holder[self.key]
        return value if isinstance(value, str) else ""

    def set(self, value: str) -> None:
        self.holder[self.key] = value
        if self.changed is not None:
            self.changed()


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def request_slots(body: dict[str, Any]) -> list[Slot]:
    """Every text of a canonical request: contents, text parts, tool-call arguments, input."""
    slots: list[Slot] = []
    for message in _dicts(body.get("messages")):
        slots.extend(_content_slots(message, "content"))
        for call in _dicts(message.get("tool_calls")):
            slots.extend(_argument_slots(call.get("function")))
        slots.extend(_argument_slots(message.get("function_call")))
    inputs = body.get("input")
    if isinstance(inputs, str):
        slots.append(Slot(body, "input"))
    elif isinstance(inputs, list):
        slots.extend(Slot(inputs, i) for i, item in enumerate(inputs) if isinstance(item, str))
    return slots


def _content_slots(
    holder: dict[str, Any], key: str, changed: Callable[[], None] | None = None
) -> list[Slot]:
    content = holder.get(key)
    if isinstance(content, str):
        return [Slot(holder, key, changed)]
    return [
        Slot(part, "text", changed)
        for part in _dicts(content)
        if part.get("type") == "text" and isinstance(part.get("text"), str)
    ]


def _argument_slots(function: Any) -> list[Slot]:
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return []
    try:
        parsed = json.loads(function["arguments"])
    except ValueError:
        return [Slot(function, "arguments")]
    if not isinstance(parsed, dict | list):
        return [Slot(function, "arguments")]

    def rewrite() -> None:
        function["arguments"] = json.dumps(parsed, ensure_ascii=False)

    return _json_strings(parsed, rewrite)


def _json_strings(value: Any, changed: Callable[[], None]) -> list[Slot]:
    items = value.items() if isinstance(value, dict) else enumerate(value)
    out = []
    for key, item in items:
        if isinstance(item, str):
            out.append(Slot(value, key, changed))
        elif isinstance(item, dict | list):
            out.extend(_json_strings(item, changed))
    return out


def response_slots(body: dict[str, Any]) -> list[Slot]:
    """The answer texts of a chat.completion: each choice's `message.content`."""
    slots: list[Slot] = []
    for choice in _dicts(body.get("choices")):
        message = choice.get("message")
        if isinstance(message, dict):
            slots.extend(_content_slots(message, "content", _drop_logprobs(choice)))
    return slots


def _drop_logprobs(choice: dict[str, Any]) -> Callable[[], None]:
    def drop() -> None:
        if choice.get("logprobs") is not None:
            choice["logprobs"] = None

    return drop


# --------------------------------------------------------------------------- the policy


def _counts(groups: list[Cluster]) -> dict[str, int]:
    return dict(sorted(Counter(c.label for c in groups).items()))


def _record(ctx: RequestContext, stage: str, action: str, counts: dict[str, int]) -> dict[str, Any]:
    entry = {"guard": NAME, "stage": stage, "action": action, "entities": counts}
    ctx.annotations.setdefault("guards", []).append(entry)
    return entry


class PiiGuardPolicy(Policy):
    """One route's PII guard; bound to its gateway's worker pool at configure time."""

    name = NAME

    def __init__(self, config: PiiGuardConfig) -> None:
        self.config = config
        self.specs: dict[Stage, EngineSpec] = {}
        self._pool: AnalyzerPool | None = None

    def bind(self, pool: AnalyzerPool, ner_setting: str | None) -> list[str]:
        """Use `pool`; returns the NER entities skipped because no NER model is installed."""
        self._pool = pool
        config = self.config
        model = installed_ner_model(config.language, ner_setting)
        skipped: set[str] = set()
        for name in ("request", "response"):
            stage = config.stage(name)
            if stage is None:
                continue
            entities = stage.analysed
            if model is None:
                skipped.update(e for e in entities if e in NER_ENTITIES)
                entities = tuple(e for e in entities if e not in NER_ENTITIES)
            self.specs[name] = self._spec(entities, model)
        return sorted(skipped)

    def _spec(self, entities: tuple[str, ...], model: str | None) -> EngineSpec:
        config = self.config
        wanted = set(entities)
        return EngineSpec(
            language=config.language,
            entities=entities,
            custom=tuple(
                CustomPattern(c.name, c.regex, c.score, c.max_length)
                for c in config.custom
                if c.name in wanted
            ),
            score_threshold=config.score_threshold,
            ner_model=model if wanted & NER_ENTITIES.keys() else None,
            max_lengths=tuple(sorted((k, v) for k, v in config.max_lengths.items() if k in wanted)),
            phone_regions=tuple(config.phone_regions) if "PHONE_NUMBER" in wanted else (),
        )

    @property
    def pool(self) -> AnalyzerPool:
        if self._pool is None:
            raise RuntimeError("pii_guard policy used before the plugin configured it")
        return self._pool

    async def on_request(self, ctx: RequestContext) -> Decision | None:
        if ctx.request is None:
            return None
        return await self._guard(ctx, "request", request_slots(ctx.request.body))

    async def on_response(
        self, ctx: RequestContext, response: CanonicalResponse
    ) -> Decision | None:
        return await self._guard(ctx, "response", response_slots(response.body))

    async def _guard(self, ctx: RequestContext, name: Stage, slots: list[Slot]) -> Decision | None:
        stage, spec = self.config.stage(name), self.specs.get(name)
        if stage is None or spec is None:
            return None
        texts = [slot.get() for slot in slots]
        results = await self._analyze(spec, texts)
        masked = [mask_text(text, found) for text, found in zip(texts, results, strict=True)]
        groups = [c for _, found in masked for c in found]
        counts = _counts(groups)
        if any(stage.rejects(c) for c in groups):
            _record(ctx, name, "reject", counts)
            error = stage.error(counts)
            return Decision.reject(error.message, status=error.status, code=error.code)
        for slot, (text, found) in zip(slots, masked, strict=True):
            if found:
                slot.set(text)
        _record(ctx, name, "mask" if groups else "pass", counts)
        return None

    async def _analyze(self, spec: EngineSpec, texts: list[str]) -> list[list[Any]]:
        if not spec.entities or not any(t.strip() for t in texts):
            return [[] for _ in texts]
        return await self.pool.call(analyze_texts, spec, texts)

    def stream_filter(self, ctx: RequestContext) -> StreamFilter | None:
        stage, spec = self.config.response, self.specs.get("response")
        if stage is None or spec is None or not spec.entities:
            return None
        entry = _record(ctx, "stream", "pass", {})
        return MaskingStreamFilter(self._step(spec), _observer(stage, entry))

    def _step(self, spec: EngineSpec) -> Step:
        pool = self.pool

        async def step(window: str, released: int, final: bool) -> tuple[list[Any], int]:
            return await pool.call(stream_step, spec, window, released, final)

        return step


def _observer(stage: StageConfig, entry: dict[str, Any]) -> Callable[[list[Cluster]], None]:
    """Counts what a stream masks into its access-log entry; raises to reject."""

    def observe(groups: list[Cluster]) -> None:
        counts: Counter[str] = Counter(entry["entities"])
        counts.update(c.label for c in groups)
        entry["entities"] = dict(sorted(counts.items()))
        if any(stage.rejects(c) for c in groups):
            entry["action"] = "reject"
            raise stage.error(entry["entities"])
        entry["action"] = "mask"

    return observe


# --------------------------------------------------------------------------- plugin hooks

_POOLS: weakref.WeakKeyDictionary[Gateway, AnalyzerPool] = weakref.WeakKeyDictionary()
"""Each gateway's worker pool (closed on shutdown, or when the gateway is dropped on reload)."""


@hookimpl
def modelway_policies() -> list[PolicySpec]:
    return [
        PolicySpec(
            NAME,
            PiiGuardPolicy,
            PiiGuardConfig,
            "mask or reject personal data (Presidio) in prompts and answers, streams included",
        )
    ]


@hookimpl
def modelway_configure(gateway: Gateway) -> None:
    settings: Settings = gateway.plugin_settings(NAME) or Settings()
    guarded = [
        r.name for r in gateway.routes if any(isinstance(p, PiiGuardPolicy) for p in r.policies)
    ]
    if guarded and importlib.util.find_spec("presidio_analyzer") is None:
        raise ConfigError(
            f"routes {', '.join(guarded)} use pii_guard, which needs presidio-analyzer "
            "(pip install presidio-analyzer)"
        )
    pool = AnalyzerPool(settings.workers, settings.executor, settings.timeout_seconds)
    specs: list[EngineSpec] = []
    for route in gateway.routes:
        for policy in route.policies:
            if isinstance(policy, PiiGuardPolicy):
                _warn_skipped(gateway, route.name, policy.bind(pool, settings.ner_model))
                specs.extend(policy.specs.values())
    pool.specs = tuple(dict.fromkeys(s for s in specs if s.entities))
    previous = _POOLS.get(gateway)
    if previous is not None:
        previous.close()
    _POOLS[gateway] = pool
    weakref.finalize(gateway, pool.close)


def _warn_skipped(gateway: Gateway, route: str, skipped: list[str]) -> None:
    if not skipped:
        return
    notice = (
        f"pii_guard on route '{route}': {', '.join(skipped)} need a spaCy NER model and none "
        "is installed (pip install 'modelway[ner]'); they are not detected"
    )
    logger.warning(notice)
    gateway.notices.append(notice)


@hookimpl
def modelway_startup(gateway: Gateway) -> None:
    pool = _POOLS.get(gateway)
    if pool is not None and pool.specs:
        pool.start()


@hookimpl
def modelway_shutdown(gateway: Gateway) -> None:
    pool = _POOLS.pop(gateway, None)
    if pool is not None:
        pool.close()
