"""Analyse only the regions of a text where a match can be, with the same findings.

A region is a maximal run of the characters a match of the entity may consist of that holds
a character every match needs (an `@` for an e-mail, a `.` for a URL, a digit for a phone
number), padded for word boundaries and look-arounds. Only recognizers whose full-text scan
is costly are segmented; the phone recognizer also gets the pre-filter of `phone`.
"""

from __future__ import annotations

from typing import Any

from modelway.plugins.policies.pii_guard.phone import (
    PHONE_PAD,
    phone_runs,
    prefilter_phone_parsing,
)

# entity -> (a regex whose matches are the maximal runs of characters a match of the entity may
# consist of that contain a character every match needs, how much text around such a run the
# recognizer needs); only for recognizers whose full-text scan is costly. See `segmented`.
SEGMENTS: dict[str, tuple[str, int]] = {
    "EMAIL_ADDRESS": (r"[^\s@]*@\S*", 1),
    "URL": (r"[^\s.]*\.\S*", 1),
}


def segmented(recognizer: Any, entity: str) -> Any:
    """Make `recognizer` analyse only the regions of a text where a match can be.

    A region is a maximal run of the characters a match may consist of that holds a character
    every match needs (an `@` for an e-mail, a digit for a phone number), plus `pad`
    characters around it for word boundaries, look-arounds and the phone matcher's checks.
    Every match lies inside one such run, so the findings are those of the whole text, at a
    fraction of the cost on prose.
    """
    import regex

    if entity == "PHONE_NUMBER":
        prefilter_phone_parsing(recognizer)
        source, pad = phone_runs(), PHONE_PAD
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


def _regions(text: str, runs: Any, pad: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for run in runs.finditer(text):
        start, end = max(0, run.start() - pad), min(len(text), run.end() + pad)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out
