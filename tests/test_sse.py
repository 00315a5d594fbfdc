"""Unit tests for the SSE decoder and encoder (modelway.sse) and for `${VAR}` substitution
(modelway.envsubst), with hypothesis property tests.

The SSE oracle: a stream built from known events (multi-line data, event names, ids,
comments, `retry:` and unknown fields, any unicode) with LF, CRLF or CR line ends decodes to
exactly those events, however the bytes are split into chunks.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modelway.envsubst import MissingVariable, substitute
from modelway.sse import SSEDecoder, SSEEvent, encode_event

LINE_ENDS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}
PROPERTY = settings(deadline=None, max_examples=200)


# --------------------------------------------------------------------------- stream model


@dataclass
class Spec:
    """One event as a server writes it."""

    lines: list[str]
    event: str | None = None
    id: str | None = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    unknown: bool = False
    no_space: bool = False  # `data:x` instead of `data: x`

    @property
    def data(self) -> str:
        return "\n".join(self.lines)

    def field(self, name: str, value: str) -> str:
        # Without the space, a value's own leading space would be taken as the separator.
        sep = ":" if self.no_space and not value.startswith(" ") else ": "
        return f"{name}{sep}{value}"

    def wire(self, eol: str) -> str:
        out = [f":{c}" for c in self.comments]
        if self.event is not None:
            out.append(self.field("event", self.event))
        if self.id is not None:
            out.append(self.field("id", self.id))
        if self.retry is not None:
            out.append(f"retry: {self.retry}")
        if self.unknown:
            out.append("x-vendor: ignored")
        out += [self.field("data", line) for line in self.lines]
        return "".join(line + eol for line in out) + eol


def encode_stream(specs: list[Spec], eol: str) -> bytes:
    return "".join(s.wire(eol) for s in specs).encode()


def expected_events(specs: list[Spec]) -> list[SSEEvent]:
    """What a conforming decoder yields: the last event id carries over to later events."""
    out, last_id = [], None
    for spec in specs:
        last_id = spec.id if spec.id is not None else last_id
        out.append(SSEEvent(spec.data, spec.event, last_id))
    return out


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close()


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({min(p, len(data)) for p in points})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# Any text on one line: every character but CR and LF (and lone surrogates, not encodable),
# with a bias towards multi-byte characters and look-alike line breaks.
one_line = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        st.sampled_from("é€😀中\u2028\u2029\x85\x0b\x0c\x1c\x00:"),
    ),
    max_size=12,
)
specs = st.builds(
    Spec,
    lines=st.lists(one_line, min_size=1, max_size=4),
    event=st.none() | one_line.filter(bool),
    id=st.none() | one_line.filter(lambda s: "\0" not in s),
    comments=st.lists(one_line, max_size=2),
    retry=st.none() | st.integers(0, 10_000),
    unknown=st.booleans(),
    no_space=st.booleans(),
)
streams = st.lists(specs, min_size=1, max_size=5)
line_ends = st.sampled_from(sorted(LINE_ENDS.values()))

RICH = [
    Spec(["hello"]),
    Spec(['{"id": 1, "choices": []}'], event="message", id="1", comments=["keep-alive"]),
    Spec(["first line", "", "  indented", "ünïcödé € 😀 中文"], event="multi", retry=3000),
    Spec([""], unknown=True),
    Spec(["x:y: z"], id="", no_space=True, comments=["", " spaced comment"]),
    Spec(["[DONE]"]),
]


# --------------------------------------------------------------------------- decoder: oracle


@pytest.mark.parametrize("eol", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_rich_stream_decodes_to_its_events(eol):
    assert decode([encode_stream(RICH, eol)]) == expected_events(RICH)


@pytest.mark.parametrize("eol", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_rich_stream_split_at_every_point(eol):
    data = encode_stream(RICH, eol)
    whole = decode([data])
    assert whole == expected_events(RICH)
    for point in range(len(data) + 1):
        assert decode([data[:point], data[point:]]) == whole, point


@pytest.mark.parametrize("eol", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_rich_stream_byte_by_byte(eol):
    data = encode_stream(RICH, eol)
    assert decode([data[i : i + 1] for i in range(len(data))]) == expected_events(RICH)


@PROPERTY
@given(streams, line_ends)
def test_any_stream_decodes_to_its_events(specs_, eol):
    assert decode([encode_stream(specs_, eol)]) == expected_events(specs_)


@PROPERTY
@given(streams, line_ends)
def test_any_stream_split_at_every_single_point(specs_, eol):
    data = encode_stream(specs_, eol)
    whole = decode([data])
    assert whole == expected_events(specs_)
    for point in range(len(data) + 1):
        assert decode([data[:point], data[point:]]) == whole, point


@PROPERTY
@given(streams, line_ends, st.data())
def test_any_stream_split_at_many_points(specs_, eol, data_):
    data = encode_stream(specs_, eol)
    points = data_.draw(st.lists(st.integers(0, len(data)), max_size=30))
    assert decode(split_at(data, points)) == expected_events(specs_)


@pytest.mark.parametrize("eol", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_complete_events_are_delivered_without_waiting_for_more_bytes(eol):
    """A streaming proxy must pass an event on as soon as its blank line has arrived."""
    decoder = SSEDecoder()
    first = decoder.feed(f"data: one{eol}{eol}".encode())
    assert first == [SSEEvent("one")]
    assert decoder.feed(f"data: two{eol}{eol}".encode()) == [SSEEvent("two")]
    assert decoder.close() == []


def test_multibyte_character_split_across_chunks():
    data = "data: 😀€中\n\n".encode()
    emoji_start = data.index("😀".encode())
    for point in range(emoji_start, emoji_start + 4):
        assert decode([data[:point], data[point:]]) == [SSEEvent("😀€中")]


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    """A CRLF cut in two must not count as CR then an (event-ending) blank LF line."""
    decoder = SSEDecoder()
    events = decoder.feed(b"data: a\r")
    events += decoder.feed(b"\ndata: b\r")
    events += decoder.feed(b"\n\r")
    events += decoder.feed(b"\n")
    assert events + decoder.close() == [SSEEvent("a\nb")]


# --------------------------------------------------------------------------- decoder: details


def test_done_is_an_ordinary_data_event():
    assert decode([b"data: {}\n\ndata: [DONE]\n\n"]) == [SSEEvent("{}"), SSEEvent("[DONE]")]


def test_comments_are_ignored():
    stream = b": ping\n\n:\n: another\ndata: x\n: between\ndata: y\n\n"
    assert decode([stream]) == [SSEEvent("x\ny")]


def test_retry_and_unknown_fields_are_ignored():
    stream = b"retry: 5000\n\nretry: 100\ndata: x\nfoo: bar\nDATA: no\n\n"
    assert decode([stream]) == [SSEEvent("x")]


def test_only_one_space_after_the_colon_is_removed():
    assert decode([b"data:x\n\ndata:  y\n\n"]) == [SSEEvent("x"), SSEEvent(" y")]


def test_field_without_colon_has_an_empty_value():
    assert decode([b"data\ndata\n\n"]) == [SSEEvent("\n")]


def test_event_without_data_is_not_dispatched_and_its_name_does_not_leak():
    assert decode([b"event: lonely\n\ndata: x\n\n"]) == [SSEEvent("x")]


def test_last_event_id_persists_and_nul_ids_are_ignored():
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\0\ndata: c\n\nid\ndata: d\n\n"
    assert decode([stream]) == [
        SSEEvent("a", None, "7"),
        SSEEvent("b", None, "7"),
        SSEEvent("c", None, "7"),
        SSEEvent("d", None, ""),
    ]


def test_last_event_without_blank_line_is_delivered_on_close():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: tail") == [SSEEvent("a")]
    assert decoder.close() == [SSEEvent("tail")]
    assert decoder.close() == []


def test_invalid_utf8_is_replaced_not_raised():
    assert decode([b"data: \xff\xfe ok\n\n"]) == [SSEEvent("\ufffd\ufffd ok")]


@pytest.mark.parametrize("eol", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_leading_byte_order_mark_is_ignored(eol):
    """The event-stream rules: one leading U+FEFF is ignored, however the bytes are split."""
    data = b"\xef\xbb\xbf" + f"data: first{eol}{eol}data: second{eol}{eol}".encode()
    expected = [SSEEvent("first"), SSEEvent("second")]
    for point in range(len(data) + 1):
        assert decode([data[:point], data[point:]]) == expected, point


# --------------------------------------------------------------------------- encoder


def sse_normalised(data: str) -> str:
    """What SSE can carry: CR, LF and CRLF in data all arrive as LF."""
    return re.sub(r"\r\n|\r", "\n", data)


def test_encode_event_wire_form():
    assert encode_event("x") == b"data: x\n\n"
    assert encode_event("x", "message") == b"event: message\ndata: x\n\n"
    assert encode_event("a\nb") == b"data: a\ndata: b\n\n"
    assert encode_event("") == b"data: \n\n"
    assert encode_event("[DONE]") == b"data: [DONE]\n\n"


@PROPERTY
@given(
    st.text(
        alphabet=st.one_of(
            st.characters(blacklist_categories=("Cs",)),
            st.sampled_from("\r\n€😀\u2028\x85"),
        )
    ),
    st.none() | one_line.filter(bool),
)
@example("line\n", None)
@example("a\nb\u2028c", None)
@example("a\r\nb", "x")
@example("\n", None)
def test_encode_event_round_trips(data, event):
    assert decode([encode_event(data, event)]) == [SSEEvent(sse_normalised(data), event)]


@PROPERTY
@given(st.lists(st.tuples(one_line, st.none() | one_line.filter(bool)), max_size=5), st.data())
def test_encoded_events_round_trip_through_any_split(events, data_):
    wire = b"".join(encode_event(d, e) for d, e in events)
    points = data_.draw(st.lists(st.integers(0, len(wire)), max_size=10))
    assert decode(split_at(wire, points)) == [SSEEvent(d, e) for d, e in events]


# --------------------------------------------------------------------------- envsubst


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("plain", {}, "plain"),
        ("", {}, ""),
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-with spaces, dashes-and:colons}", {}, "with spaces, dashes-and:colons"),
        ("${A}", {"A": ""}, ""),
        ("$$", {}, "$"),
        ("$$$$", {}, "$$"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("$$${A}", {"A": "x"}, "$x"),
        ("costs $5", {}, "costs $5"),
        ("$A and $", {"A": "x"}, "$A and $"),
        ("${1A}", {}, "${1A}"),
        ("${A", {"A": "x"}, "${A"),
        ("${_UNDER_score9}", {"_UNDER_score9": "ok"}, "ok"),
        ("${A}", {"A": "${B}"}, "${B}"),
        ("${A}", {"A": "$$"}, "$$"),
        ("${A:-${B}}", {"B": "b"}, "${B}"),
    ],
)
def test_substitute(text, environ, expected):
    assert substitute(text, environ) == expected


@pytest.mark.parametrize("text", ["${MISSING}", "ok ${MISSING} ok", "${SET}${MISSING}"])
def test_missing_variable_names_it(text):
    with pytest.raises(MissingVariable) as caught:
        substitute(text, {"SET": "s3cr3t-value"})
    assert caught.value.name == "MISSING"
    message = str(caught.value)
    assert "MISSING" in message and "not set" in message
    assert "${MISSING:-default}" in message
    assert "s3cr3t-value" not in message


def test_missing_variable_is_a_value_error():
    with pytest.raises(ValueError, match="NOPE"):
        substitute("${NOPE}", {})


@given(st.text())
def test_text_without_dollar_is_unchanged(text):
    text = text.replace("$", "")
    assert substitute(text, {}) == text


@given(st.text())
def test_doubled_dollars_stand_for_literal_dollars(text):
    assert substitute(text.replace("$", "$$"), {}) == text


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(st.dictionaries(names, st.text(), min_size=1, max_size=5))
def test_every_reference_is_replaced_verbatim_once(environ):
    text = "|".join(f"${{{name}}}" for name in environ)
    assert substitute(text, environ) == "|".join(environ.values())
