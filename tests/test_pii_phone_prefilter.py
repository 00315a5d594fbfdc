"""The PII guard's phone pre-filter finds exactly what Presidio's own PhoneRecognizer finds.

The pre-filter skips phone parses that cannot succeed (policies/pii_guard/phone.py); this
it with the unpatched recognizer on every region's example numbers in several formats, mutated,
and on random digit and punctuation runs (a fixed seed, so a failure is reproducible).
"""

from __future__ import annotations

import random
from typing import Any

import phonenumbers
import pytest
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from modelway.plugins.policies.pii_guard import phone as pii_phone

TYPES = (
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.TOLL_FREE,
)
FORMATS = (
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.E164,
)


def example_numbers() -> list[str]:
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            out += [phonenumbers.format_number(number, f) for f in FORMATS]
            out += [
                phonenumbers.format_out_of_country_calling_number(number, r)
                for r in ("US", "DE", "BR", "IL")
            ]
    return out


def random_text(rng: random.Random, examples: list[str]) -> str:
    def piece() -> str:
        roll = rng.random()
        if roll < 0.4:
            chars = list(rng.choice(examples))
            for _ in range(rng.randint(0, 3)):
                chars.insert(rng.randrange(len(chars) + 1), rng.choice("0123456789 -"))
            return "".join(chars)
        if roll < 0.7:
            return "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 20)))
        return "".join(rng.choice("0123456789      --..()/+x[]") for _ in range(rng.randint(3, 25)))

    glue = rng.choice([" call ", " and ", ", ", "\n", " tel: "])
    return glue.join(piece() for _ in range(rng.randint(1, 4)))


def findings(recognizer: PhoneRecognizer, text: str) -> list[Any]:
    results = recognizer.analyze(text, ["PHONE_NUMBER"])
    return sorted((r.start, r.end, r.score) for r in results)


@pytest.mark.parametrize(
    "regions",
    [list(PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS), ["US"], ["JP", "AR", "MX", "IT"]],
    ids=["default", "us", "others"],
)
def test_prefilter_finds_what_presidio_finds(regions):
    reference = PhoneRecognizer(supported_regions=regions)
    patched = PhoneRecognizer(supported_regions=regions)
    pii_phone.prefilter_phone_parsing(patched)
    rng = random.Random(20261124)
    examples = example_numbers()
    texts = [random_text(rng, examples) for _ in range(1500)]
    differences = [t for t in texts if findings(reference, t) != findings(patched, t)]
    assert differences == []
    again = texts[:300]  # now with every verdict remembered (the patched recognizer's cache)
    assert [t for t in again if findings(reference, t) != findings(patched, t)] == []
    assert any(findings(reference, t) for t in texts)  # the corpus does contain phone numbers
