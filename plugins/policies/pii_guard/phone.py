"""The PII guard's phone pre-filter: cheaper phone detection with the same findings.

Presidio's PhoneRecognizer runs python-phonenumbers' matcher once per region over every
candidate: most of the guard's cost on text with digits. `prefilter_phone_parsing` makes it
skip the parses that cannot succeed; `phone_runs` and `phone_candidate` are the regexes the
engine uses to analyse only the regions of a text where a number can be, and to hold back
streamed text where one may still be in progress. phonenumbers is imported lazily (workers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PHONE_PAD = 64
"""Text kept around a phone candidate: its extension ("ext. 123") and the matcher's checks."""
VERDICTS = 65536
"""The most candidates whose verdict a region remembers (about 10 MB at most for all)."""


def prefilter_phone_parsing(recognizer: Any) -> None:
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
    rejects = {region: _rejecters(region) for region in recognizer.supported_regions}
    verdicts: dict[str, dict[str, bool]] = {region: {} for region in rejects}
    """Each region's verdicts so far, by a plain candidate's digits: the verdict is a pure
    function of them, and a text's candidates come back (a stream's window is analysed again
    as it grows; numbers such as years recur). A region's dict is emptied when it is full."""

    def all_rejected(region: str, numbers: list[str]) -> bool:
        found = rejects.get(region)
        if found is None:
            return False
        reject_digits = found[1]
        known = verdicts[region]
        if len(known) > VERDICTS:
            known.clear()
        for digits in numbers:
            verdict = known.get(digits)
            if verdict is None:
                verdict = known[digits] = reject_digits(digits)
            if not verdict:
                return False
        return True

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
            found.reject = reject[0]
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
        plain = [plain_digits(candidate) for candidate in probe.candidates]
        numbers = [digits for digits in plain if digits is not None]
        every_plain = len(numbers) == len(plain)  # another candidate is parsed everywhere
        for region in recognizer.supported_regions:
            if every_plain and all_rejected(region, numbers):
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
_BACKREFERENCE = re.compile(r"\\\d+|\$\d+|\\g<\w+>")


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
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


def _matches_desc(number: str, desc: tuple[frozenset[int], Any]) -> bool:
    """phonenumbers' `_is_number_matching_desc`: a possible length (if any listed), and the
    whole number matching the pattern."""
    lengths, pattern = desc
    return (not lengths or len(number) in lengths) and pattern.fullmatch(number) is not None


_PLAIN = re.compile(_PLAIN_PHONE)
_NON_DIGITS = re.compile(r"\D")


def plain_digits(candidate: str) -> str | None:
    """The digits of a candidate made only of ASCII digits and plain punctuation, else None
    (a plus sign, letters, an extension: the rejecters leave those to the parser)."""
    if _PLAIN.fullmatch(candidate) is None:
        return None
    return _NON_DIGITS.sub("", candidate)


def phone_rejecter(region: str) -> Callable[[str], bool] | None:
    """Whether a matcher candidate surely fails `parse` + `is_valid_number` for `region`;
    None when that cannot be told cheaply for the region."""
    found = _rejecters(region)
    return None if found is None else found[0]


def _rejecters(region: str) -> tuple[Callable[[str], bool], Callable[[str], bool]] | None:
    """`phone_rejecter`'s test of a candidate, and the same test of a plain candidate's
    digits (`plain_digits`)."""
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
    too_short = _shortest_digits(lengths, [transform for _, transform in strips])

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
        digits = plain_digits(candidate)
        return digits is not None and reject_digits(digits)

    def reject_digits(digits: str) -> bool:
        if international.match(digits):
            return False
        if len(digits) < too_short:  # no national number it may be read as is long enough
            return True
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

    return reject, reject_digits


def _shortest_digits(lengths: frozenset[int] | None, transforms: list[str | None]) -> int:
    """Fewer digits than this cannot give a national number of a possible length: reading it
    strips a national prefix at most twice (each transform puts back at most its own
    literal text; one back-reference returns only what its match removed)."""
    if not lengths:
        return 0
    growth = 0
    for transform in transforms:
        if transform:
            if len(_BACKREFERENCE.findall(transform)) > 1:
                return 0
            growth = max(growth, len(_BACKREFERENCE.sub("", transform)))
    return max(0, min(lengths) - 2 * growth)


def phone_runs() -> str:
    """Runs of phone punctuation, plus signs and digits that hold a digit."""
    try:
        from phonenumbers import phonenumberutil as util

        other = f"{util._VALID_PUNCTUATION}{util._PLUS_CHARS}"
    except (ImportError, AttributeError):
        return r"[\s\S]+"
    return f"[{other}]*\\d[{other}\\d]*"


def phone_candidate() -> str | None:
    """A linear over-approximation of python-phonenumbers' candidate pattern (whose nested
    digit-block repeats backtrack badly in partial matching): leading brackets or plus signs,
    then digits and phone punctuation, then an optional extension. An optional trailing ':' is
    held too, because the matcher drops a candidate followed by a time-stamp suffix like ':30'.
    None when phonenumbers lacks the internals it is built from.
    """
    try:
        from phonenumbers import phonenumberutil as util

        punctuation, extension = util._VALID_PUNCTUATION, util._EXTN_PATTERNS_FOR_MATCHING
        plus = util._PLUS_CHARS
    except (ImportError, AttributeError):
        return None
    lead = f"[{plus}(\\[\uff08\uff3b][{punctuation}]*"
    return f"(?:{lead}){{0,2}}\\d[{punctuation}\\d]*(?:{extension})?:?"
