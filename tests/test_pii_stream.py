"""The PII guard's streaming masker: split entities never leak, output equals the whole answer
masked, text far from entities is released at once, and the chunk structure stays valid.

The analyzer is the real Presidio one (pii_engine.stream_step, run in-process here); the
gateway-level tests are in test_pii_guard.py.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from modelway.errors import GatewayError
from modelway.hubview import ChunkTextEditor
from modelway.plugins.policies.pii_guard.engine import (
    PATTERN_ENTITIES,
    CustomPattern,
    EngineSpec,
    Found,
    analyze_texts,
    stream_step,
)
from modelway.plugins.policies.pii_guard.stream import (
    Cluster,
    MaskingTextFilter,
    StreamMasker,
    clusters,
    mask_text,
)

EMPLOYEE = CustomPattern("EMPLOYEE_ID", r"E-\d{6}", 0.9, 8)

# Values each entity type's recognizer finds (at the threshold of the spec that lists them).
VALUES: dict[str, list[str]] = {
    "CREDIT_CARD": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
    "CRYPTO": ["1BoatSLRHtKNngkdXEeobR76b53LETtpyT"],
    "DATE_TIME": ["2024-01-15", "15/01/2024"],
    "EMAIL_ADDRESS": ["john.doe@example.com", "a.b-c@mail.example.org"],
    "IBAN_CODE": ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
    "IP_ADDRESS": ["192.168.1.20", "2001:db8::1"],
    "MAC_ADDRESS": ["00:1B:44:11:3A:B7"],
    "MEDICAL_LICENSE": ["BB1388568"],
    "PHONE_NUMBER": ["(212) 555-0123", "+44 20 7946 0958"],
    "UK_NHS": ["943 476 5919"],
    "URL": ["https://example.org/path", "www.foo.com"],
    "US_BANK_NUMBER": ["12345678"],
    "US_DRIVER_LICENSE": ["H12345678"],
    "US_ITIN": ["912-70-1234"],
    "US_PASSPORT": ["A12345678"],
    "US_SSN": ["219-09-9999"],
    "UUID": ["123e4567-e89b-12d3-a456-426614174000"],
    "EMPLOYEE_ID": ["E-123456"],
}
FILLERS = [
    " Sure, here it is: ",
    "\nThe value is ",
    " and ",
    ", then ",
    " (see ",
    "; also ",
    "\n- ",
    " -- ",
]
ENDINGS = [".", " Thanks!", "\n", ") done.", ""]

# Every entity type the guard supports by pattern, plus a custom one; 0.05 keeps the weak
# US_* recognizers (which need context words for a higher score) in.
ALL = EngineSpec(
    "en", tuple(sorted([*PATTERN_ENTITIES, "EMPLOYEE_ID"])), (EMPLOYEE,), score_threshold=0.05
)
TYPICAL = EngineSpec(
    "en",
    tuple(
        sorted(
            [
                "CREDIT_CARD",
                "EMAIL_ADDRESS",
                "PHONE_NUMBER",
                "IBAN_CODE",
                "IP_ADDRESS",
                "US_SSN",
                "URL",
                "EMPLOYEE_ID",
            ]
        )
    ),
    (EMPLOYEE,),
)
assert set(VALUES) == set(ALL.entities)


@functools.cache
def cached_step(spec: EngineSpec, window: str, released: int, final: bool) -> tuple[Any, int]:
    """`stream_step` (a pure function of its arguments) once per distinct call: streaming one
    text cut in every possible way asks for the same window again and again."""
    found, hold = stream_step(spec, window, released, final)
    return tuple(found), hold


def step_for(spec: EngineSpec):
    async def step(window: str, released: int, final: bool) -> tuple[list[Found], int]:
        found, hold = cached_step(spec, window, released, final)
        return list(found), hold

    return step


@functools.cache
def whole(spec: EngineSpec, text: str) -> str:
    """`text` masked in one piece (cached: the boundary tests stream one text many ways)."""
    return mask_text(text, analyze_texts(spec, [text])[0])[0]


async def stream(spec: EngineSpec, pieces: list[str]) -> list[str]:
    """What the masker releases after each piece, then at the end."""
    masker = StreamMasker(step_for(spec))
    out = [(await masker.push(piece))[0] for piece in pieces]
    out.append((await masker.push("", final=True))[0])
    return out


def check_stream(spec: EngineSpec, text: str, values: list[str], pieces: list[str]) -> None:
    expected = whole(spec, text)
    emitted = asyncio.run(stream(spec, pieces))
    so_far = ""
    for piece in emitted:
        so_far += piece
        assert expected.startswith(so_far), (pieces, so_far, expected)
        # what the whole text masks never shows; a value Presidio misses even in the whole
        # text (a phone number followed by " -- 15/01/2024") is the analyzer's, not the stream's
        leaked = [v for v in values if v in so_far and v not in expected]
        assert not leaked, (pieces, so_far)
    assert so_far == expected, pieces


@st.composite
def answers(draw: Any, entities: tuple[str, ...]) -> tuple[str, list[str]]:
    chosen = [draw(st.sampled_from(VALUES[e])) for e in entities]
    order = draw(st.permutations(chosen))
    parts = []
    for value in order:
        parts += [draw(st.sampled_from(FILLERS)), value]
    parts.append(draw(st.sampled_from(ENDINGS)))
    return "".join(parts), list(order)


def splits(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, *cuts, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


# ------------------------------------------------------------------------ preconditions


@pytest.mark.parametrize("spec", [ALL, TYPICAL], ids=["all", "typical"])
def test_every_sample_value_is_masked_when_whole(spec):
    for entity in spec.entities:
        for value in VALUES[entity]:
            masked = whole(spec, f"Sure, the value is {value} and more.")
            assert value not in masked and "<" in masked, (entity, value, masked)


# ------------------------------------------------------------------------ property tests

EVERY_TYPE = "".join(f"{FILLERS[i % len(FILLERS)]}{VALUES[e][0]}" for i, e in enumerate(VALUES))
EVERY_TYPE_VALUES = [VALUES[e][0] for e in VALUES]


def test_every_chunk_boundary_of_an_answer_with_every_entity_type():
    text = EVERY_TYPE + " Thanks!"
    for cut in range(1, len(text)):
        check_stream(ALL, text, EVERY_TYPE_VALUES, [text[:cut], text[cut:]])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(TYPICAL.entities))
def test_every_chunk_boundary_of_generated_answers(answer):
    text, values = answer
    for cut in range(1, len(text)):
        check_stream(TYPICAL, text, values, [text[:cut], text[cut:]])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_multi_splits_with_every_entity_type(data):
    text, values = data.draw(answers(ALL.entities))
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=40))
    check_stream(ALL, text, values, splits(text, cuts))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_character_by_character_stream(data):
    text, values = data.draw(answers(TYPICAL.entities))
    check_stream(TYPICAL, text, values, list(text))


@pytest.mark.parametrize("text", ["Ref x4111111111111111 ok", "id_john.doe@example.com ok"])
def test_released_text_still_counts_as_context_for_word_boundaries(text):
    """Text glued to a released word is no entity when whole, so none when streamed either."""
    expected = whole(TYPICAL, text)
    for cut in range(1, len(text)):
        assert "".join(asyncio.run(stream(TYPICAL, [text[:cut], text[cut:]]))) == expected
    assert "".join(asyncio.run(stream(TYPICAL, list(text)))) == expected


# ------------------------------------------------------------------------ incrementality

PROSE = (
    "The migration finished ahead of schedule and the remaining work is about monitoring, "
    "documentation and a couple of small performance fixes that the team will pick up next. "
) * 4


def test_text_far_from_entities_is_released_without_waiting_for_the_end():
    masker = StreamMasker(step_for(TYPICAL))
    words = ["Write to ", "john.doe@", "example.com", " now. ", *PROSE.split(" ")]
    fed = released = ""

    async def run() -> None:
        nonlocal fed, released
        for word in words:
            piece = word if word.startswith(("Write", "john", "example", " now")) else word + " "
            fed += piece
            released += (await masker.push(piece))[0]
            if fed.endswith(" now. ") or len(fed) > 40 + len("Write to john.doe@example.com"):
                # held back: at most the word in progress (and a space or two after it)
                assert len(masker.pending) <= len(piece) + 2, (fed, masker.pending)

    asyncio.run(run())
    assert released.startswith("Write to <EMAIL_ADDRESS> now. The migration")
    assert "john" not in released


def test_an_entity_in_progress_is_held_and_text_before_it_released():
    async def run() -> list[str]:
        masker = StreamMasker(step_for(TYPICAL))
        return [
            (await masker.push("Pay with card 4111 1111"))[0],
            (await masker.push(" 1111 1111 please"))[0],
            (await masker.push("", final=True))[0],
        ]

    first, second, last = asyncio.run(run())
    assert first == "Pay with card "
    assert second == "<CREDIT_CARD> "
    assert last == "please"


def test_the_hold_is_bounded_by_the_entity_types_maximum_length():
    digits = "1234 " * 40  # a long run that could keep extending a phone-like candidate
    spec = EngineSpec("en", ("PHONE_NUMBER",))

    async def run() -> str:
        masker = StreamMasker(step_for(spec))
        out = ""
        for index in range(0, len(digits), 5):
            out += (await masker.push(digits[index : index + 5]))[0]
            assert len(masker.pending) <= spec.max_length("PHONE_NUMBER") + 5
        return out + (await masker.push("", final=True))[0]

    assert asyncio.run(run()) == whole(spec, digits)


# ------------------------------------------------------------------------ clusters


def test_overlapping_findings_merge_under_the_longest():
    found = [
        Found(0, 20, "EMAIL_ADDRESS", 1.0),
        Found(9, 20, "URL", 0.5),
        Found(25, 30, "US_SSN", 0.5),
        Found(25, 30, "US_ITIN", 0.5),
    ]
    assert clusters(found) == [
        Cluster(0, 20, "EMAIL_ADDRESS", frozenset({"EMAIL_ADDRESS", "URL"})),
        Cluster(25, 30, "US_SSN", frozenset({"US_SSN", "US_ITIN"})),
    ]


# ------------------------------------------------------------------------ chunk structure


def chunk(index: int = 0, finish: str | None = None, usage: Any = "absent", **delta: Any):
    out: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    if usage != "absent":
        out["usage"] = usage
    return out


def run_filter(chunks: list[dict[str, Any]], observe=lambda groups: None) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        editor = ChunkTextEditor([MaskingTextFilter(step_for(TYPICAL), observe)])
        out = []
        for item in chunks:
            out += await editor.edit(json.loads(json.dumps(item)))
        return out + await editor.end()

    return asyncio.run(run())


def contents(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in chunks
        if c.get("choices") and c["choices"][0]["index"] == index
    )


def test_role_finish_and_usage_chunks_pass_and_held_text_comes_before_finish():
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    out = run_filter(
        [
            chunk(role="assistant", content="", usage=None),
            chunk(content="Mail me at jane@", usage=None),
            chunk(content="example.org", usage=None),
            chunk(finish="stop", usage=None),
            {**chunk(usage=usage), "choices": []},
        ]
    )
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert contents(out) == "Mail me at <EMAIL_ADDRESS>"
    finish = [i for i, c in enumerate(out) if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish == [len(out) - 2]
    assert out[finish[0] - 1]["choices"][0]["delta"] == {"content": "<EMAIL_ADDRESS>"}
    assert out[-1] == {**chunk(usage=usage), "choices": []}
    assert all("usage" in c for c in out)
    assert "jane" not in json.dumps(out)


def test_choices_are_masked_independently():
    out = run_filter(
        [
            chunk(0, content="call (212) 555-"),
            chunk(1, content="card 4111 1111 "),
            chunk(0, content="0123 now"),
            chunk(1, content="1111 1111 ok"),
            chunk(1, finish="stop"),
            chunk(0, finish="stop"),
        ]
    )
    assert contents(out, 0) == "call <PHONE_NUMBER> now"
    assert contents(out, 1) == "card <CREDIT_CARD> ok"
    indexes = [c["choices"][0]["index"] for c in out]
    assert indexes.index(1) < len(indexes) - 1  # choice 1 finished before choice 0


def test_stream_without_finish_chunk_is_flushed_at_the_end():
    out = run_filter([chunk(content="ssn 219-09-"), chunk(content="9999")])
    assert contents(out) == "ssn <US_SSN>"


def test_fully_held_chunks_are_dropped_and_logprobs_removed():
    first = chunk(content="4111 ")
    first["choices"][0]["logprobs"] = {"content": [{"token": "4111"}]}
    out = run_filter([first, chunk(content="1111 1111 1111 x"), chunk(finish="stop")])
    assert "4111" not in json.dumps(out)
    assert all(c["choices"][0].get("logprobs") is None for c in out)
    assert contents(out) == "<CREDIT_CARD> x"


def test_observer_can_reject_before_the_entity_is_released():
    released: list[str] = []

    def observe(groups: list[Cluster]) -> None:
        if any(g.label == "US_SSN" for g in groups):
            raise GatewayError(400, "no", code="pii_detected")

    async def run() -> None:
        editor = ChunkTextEditor([MaskingTextFilter(step_for(TYPICAL), observe)])
        for piece in ["Your number is ", "219-09-", "9999 ok"]:
            for item in await editor.edit(chunk(content=piece)):
                released.append(item["choices"][0]["delta"]["content"])
        await editor.end()

    with pytest.raises(GatewayError):
        asyncio.run(run())
    assert "".join(released) == "Your number is "


def test_every_hold_pattern_is_the_recognizers_own():
    from modelway.plugins.policies.pii_guard.engine import LEFTOVER, _analyzer

    holds = _analyzer(ALL).holds
    assert len(holds) > len(ALL.entities)
    assert [p.pattern for p, _ in holds if p.pattern == LEFTOVER] == []


# ------------------------------------------------------------------------ segmented recognizers

SEGMENTED = ("EMAIL_ADDRESS", "URL", "PHONE_NUMBER")
# fmt: off
PIECES = [
    *[v for e in SEGMENTED for v in VALUES[e]],
    *VALUES["CREDIT_CARD"],
    *VALUES["IBAN_CODE"],
    " ", "  ", "\n", "\t", "word", "x", "a@b", "@", ".", "..", "+", "+1 ", "(", ")", "-", "/",
    "1", "42", "555", "0123", "212", " ext. 12", " x 7", "#", ":", ":30", "e", "com", "www",
    "http://", "é", "_",
]
# fmt: on


def recognizer_pair(entity: str) -> tuple[Any, Any]:
    from presidio_analyzer import predefined_recognizers

    from modelway.plugins.policies.pii_guard.segments import segmented

    cls = getattr(predefined_recognizers, PATTERN_ENTITIES[entity][0])
    return cls(supported_language="en"), segmented(cls(supported_language="en"), entity)


PAIRS = {entity: recognizer_pair(entity) for entity in SEGMENTED}


def spans(results: list[Any]) -> list[tuple[int, int, float]]:
    return sorted((r.start, r.end, r.score) for r in results)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=25).map("".join))
@example("call (212) 555-0123 ext. 12 now")
@example("+44 20 7946 0958 x 7.")
@example("dial 212 555 0123,    extension 99 or mail a.b@x.org.")
def test_segmented_recognizers_find_exactly_what_a_whole_text_scan_finds(text):
    """Costly recognizers only look at runs that can hold a match; the findings are the same."""
    for entity, (whole_scan, segmented) in PAIRS.items():
        expected = spans(whole_scan.analyze(text, [entity]))
        assert spans(segmented.analyze(text, [entity])) == expected, (entity, text)
