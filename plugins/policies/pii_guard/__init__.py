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
message in the client's API error shape, and the upstream receives nothing. The guard works on
every client API's own body through its policy view (`modelway.wire`), on the same-API and the
translated lane alike. The request guard reads every text a prompt carries: system text,
message texts (not images or audio), the string values of tool-call arguments and tool inputs,
tool results, text documents, and embeddings or completion input. The response guard masks
the answer texts of non-streamed answers (a reject becomes the error the client gets) and the
text deltas of streamed ones without ever releasing part of an entity (see `stream`); in a
stream, reject ends it with an error event. Reasoning (thinking) text is not masked: its
signatures would no longer verify. Token logprobs are dropped from masked answers, since they
repeat the raw text.

Entities: those of `pii_engine.PATTERN_ENTITIES` (CREDIT_CARD with its Luhn check, US_SSN,
EMAIL_ADDRESS, PHONE_NUMBER, IBAN_CODE, IP_ADDRESS, URL, ...), named `custom` regexes, and the
NER ones below. Without an NER model Presidio cannot use context words, so the weak
US_BANK_NUMBER, US_DRIVER_LICENSE and US_PASSPORT patterns score under the default threshold.

Each decision is appended to the access log's `extra.guards`: the guard, stage, action and the
entity types with their counts, never the values.

Plugin settings (`plugins: {pii_guard: {workers: 2, executor: process, ner_model: auto}}`): the
analysis runs in a worker pool (see `engine`), one per configuration, started and stopped with
it. PERSON, LOCATION, ORGANIZATION and NRP need a
spaCy NER model: `pip install 'modelway[ner]'` installs one; without it these entities are
skipped with a warning and the pattern entities still work.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelway import Decision, Policy, PolicySpec, hookimpl
from modelway.errors import ConfigError
from modelway.plugins.policies.pii_guard.config import (
    PiiGuardConfig,
    Settings,
    Stage,
    StageConfig,
)
from modelway.plugins.policies.pii_guard.engine import (
    NER_ENTITIES,
    AnalyzerPool,
    CustomPattern,
    EngineSpec,
    analyze_texts,
    installed_ner_model,
    stream_step,
)
from modelway.plugins.policies.pii_guard.stream import Cluster, MaskingTextFilter, Step, mask_text

if TYPE_CHECKING:
    from modelway.context import RequestContext
    from modelway.runtime import Gateway
    from modelway.wire import ResponseView, Segment, TextFilter

logger = logging.getLogger("modelway.pii_guard")

NAME = "pii_guard"


def _counts(groups: list[Cluster]) -> dict[str, int]:
    return dict(sorted(Counter(c.label for c in groups).items()))


def _record(ctx: RequestContext, stage: str, action: str, counts: dict[str, int]) -> dict[str, Any]:
    entry = {"guard": NAME, "stage": stage, "action": action, "entities": counts}
    ctx.annotations.setdefault("guards", []).append(entry)
    return entry


class PiiGuardPolicy(Policy):
    """One route's PII guard; bound to its configuration's worker pool at configure time."""

    name = NAME

    def __init__(self, config: PiiGuardConfig) -> None:
        self.config = config
        self.specs: dict[Stage, EngineSpec] = {}
        self._pool: AnalyzerPool | None = None

    async def shutdown(self) -> None:
        """The configuration stops: wait for its worker processes to exit."""
        if self._pool is not None:
            await self._pool.wait_closed()

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
        if ctx.call is None:
            return None
        decision, _ = await self._guard(ctx, "request", ctx.view.segments())
        return decision

    async def on_response(self, ctx: RequestContext, response: ResponseView) -> Decision | None:
        decision, masked = await self._guard(ctx, "response", response.segments())
        if masked:
            response.drop_logprobs()
        return decision

    async def _guard(
        self, ctx: RequestContext, name: Stage, segments: list[Segment]
    ) -> tuple[Decision | None, bool]:
        """The decision, and whether any text was masked."""
        stage, spec = self.config.stage(name), self.specs.get(name)
        if stage is None or spec is None:
            return None, False
        texts = [segment.text for segment in segments]
        results = await self._analyze(spec, texts)
        masked = [mask_text(text, found) for text, found in zip(texts, results, strict=True)]
        groups = [c for _, found in masked for c in found]
        counts = _counts(groups)
        if any(stage.rejects(c) for c in groups):
            _record(ctx, name, "reject", counts)
            error = stage.error(counts)
            return Decision.reject(error.message, status=error.status, code=error.code), False
        for segment, (text, found) in zip(segments, masked, strict=True):
            if found:
                segment.set(text)
        _record(ctx, name, "mask" if groups else "pass", counts)
        return None, bool(groups)

    async def _analyze(self, spec: EngineSpec, texts: list[str]) -> list[list[Any]]:
        if not spec.entities or not any(t.strip() for t in texts):
            return [[] for _ in texts]
        return await self.pool.call(analyze_texts, spec, texts)

    def stream_filter(self, ctx: RequestContext) -> TextFilter | None:
        stage, spec = self.config.response, self.specs.get("response")
        if stage is None or spec is None or not spec.entities:
            return None
        entry = _record(ctx, "stream", "pass", {})
        return MaskingTextFilter(self._step(spec), _observer(stage, entry))

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


class PiiGuardPlugin:
    """The plugin (one instance per configuration): the policy type and its worker pool."""

    Settings = Settings

    def __init__(self) -> None:
        self.pool: AnalyzerPool | None = None

    @hookimpl
    def modelway_policies(self) -> list[PolicySpec]:
        return [
            PolicySpec(
                NAME,
                PiiGuardPolicy,
                PiiGuardConfig,
                "mask or reject personal data (Presidio) in prompts and answers, streams included",
            )
        ]

    @hookimpl
    def modelway_configure(self, gateway: Gateway) -> None:
        settings: Settings = gateway.plugin_settings(NAME) or Settings()
        guarded = [
            (r.name, p) for r in gateway.routes for p in r.policies if isinstance(p, PiiGuardPolicy)
        ]
        if guarded and importlib.util.find_spec("presidio_analyzer") is None:
            names = ", ".join(dict.fromkeys(name for name, _ in guarded))
            raise ConfigError(
                f"routes {names} use pii_guard, which needs presidio-analyzer "
                "(pip install presidio-analyzer)"
            )
        if self.pool is not None:
            self.pool.close()
        pool = self.pool = AnalyzerPool(
            settings.workers, settings.executor, settings.timeout_seconds
        )
        specs: list[EngineSpec] = []
        for route, policy in guarded:
            _warn_skipped(gateway, route, policy.bind(pool, settings.ner_model))
            specs.extend(policy.specs.values())
        pool.specs = tuple(dict.fromkeys(s for s in specs if s.entities))

    @hookimpl
    def modelway_startup(self, gateway: Gateway) -> None:
        if self.pool is not None and self.pool.specs:
            self.pool.start()

    @hookimpl
    def modelway_shutdown(self, gateway: Gateway) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def _warn_skipped(gateway: Gateway, route: str, skipped: list[str]) -> None:
    if not skipped:
        return
    notice = (
        f"pii_guard on route '{route}': {', '.join(skipped)} need a spaCy NER model and none "
        "is installed (pip install 'modelway[ner]'); they are not detected"
    )
    logger.warning(notice)
    gateway.notices.append(notice)
