"""Masking text with analyzer findings: whole texts, and streamed text that never leaks.

Whole texts: overlapping findings merge into one cluster, replaced by `<ENTITY_TYPE>` of its
longest finding (`mask_text`).

Streams (`StreamMasker`, one per choice): each step analyses a window made of a little
already-released text (left context, for word boundaries) plus the held text and the new text.
The analyzer also answers the earliest position from which some entity pattern could still be
matching when more text arrives (a partial match reaching the end; bounded by the entity type's
maximum length). Everything before that position is final: it is released at once, masked
exactly as the whole text would be, unless a finding straddles the position, in which case the
cut moves back to the start of that finding. The rest stays held until the next chunk or the end
of the choice. So an entity split across chunks is never released in part, and text far from
any candidate is not delayed.

`MaskingTextFilter` is this as a `TextFilter`, one masker per channel (a choice, a content
block): every wire API's stream editor feeds it its text deltas and flushes a channel when it
ends, so held text is released right before the channel's end event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

from modelway.plugins.policies.pii_guard.engine import Found

LEFT_CONTEXT = 64
"""Released characters analysed again in front of held text (word boundaries, context)."""

Step = Callable[[str, int, bool], Awaitable[tuple[list[Found], int]]]
"""(window, released offset in it, final) -> (findings in the window, hold-from offset)."""

Observe = Callable[[list["Cluster"]], None]
"""Sees the clusters about to be released; raises to stop the stream instead."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """Overlapping findings merged: one masked region, named after its longest finding."""

    start: int
    end: int
    label: str
    entities: frozenset[str]


def placeholder(label: str) -> str:
    return f"<{label}>"


def clusters(found: Iterable[Found]) -> list[Cluster]:
    """Findings merged where they overlap, in text order."""
    out: list[Cluster] = []
    group: list[Found] = []
    end = -1
    for item in sorted(found, key=lambda f: (f.start, -f.end)):
        if group and item.start < end:
            group.append(item)
            end = max(end, item.end)
            continue
        if group:
            out.append(_cluster(group, end))
        group, end = [item], item.end
    if group:
        out.append(_cluster(group, end))
    return out


def _cluster(group: list[Found], end: int) -> Cluster:
    best = max(group, key=lambda f: (f.end - f.start, f.score, f.entity))
    return Cluster(group[0].start, end, best.entity, frozenset(f.entity for f in group))


def mask_span(text: str, start: int, end: int, groups: list[Cluster]) -> str:
    """`text[start:end]` with each cluster (all inside that range, in order) masked."""
    parts = []
    position = start
    for cluster in groups:
        parts.append(text[position : cluster.start])
        parts.append(placeholder(cluster.label))
        position = cluster.end
    parts.append(text[position:end])
    return "".join(parts)


def mask_text(text: str, found: Iterable[Found]) -> tuple[str, list[Cluster]]:
    """The whole text masked, and the clusters that were masked."""
    groups = clusters(found)
    return mask_span(text, 0, len(text), groups), groups


def safe_cut(groups: list[Cluster], hold: int, released: int) -> int:
    """Where to stop releasing: at `hold`, or before a cluster that straddles it."""
    cut = max(hold, released)
    for cluster in groups:
        if cluster.start < cut < cluster.end:
            return max(cluster.start, released)
    return cut


class StreamMasker:
    """One streamed text: releases masked text as soon as no entity can still be in it."""

    def __init__(self, step: Step, context: int = LEFT_CONTEXT) -> None:
        self._step = step
        self._context = context
        self._raw = ""
        self._base = 0
        """Absolute offset of `_raw[0]` (released text older than the context is dropped)."""
        self._released = 0

    @property
    def pending(self) -> str:
        """Text received and not yet released."""
        return self._raw[self._released - self._base :]

    async def push(self, text: str, final: bool = False) -> tuple[str, list[Cluster]]:
        """Add `text`; the masked text now safe to release and the clusters in it."""
        self._raw += text
        if not self.pending or not (text or final):
            return "", []
        start = self._window_start()
        window = self._raw[start:]
        released = self._released - self._base - start
        found, hold = await self._step(window, released, final)
        groups = [c for c in clusters(found) if c.end > released]
        cut = safe_cut(groups, len(window) if final else hold, released)
        out = [_clip(c, released) for c in groups if c.start < cut]
        piece = mask_span(window, released, cut, out)
        self._released += cut - released
        self._trim()
        return piece, out

    def _window_start(self) -> int:
        released = self._released - self._base
        low = max(0, released - self._context)
        if low == 0:
            return 0
        for index in range(low, released):
            if self._raw[index].isspace():
                return index + 1
        return low

    def _trim(self) -> None:
        drop = self._released - self._base - 2 * self._context
        if drop > 0:
            self._raw = self._raw[drop:]
            self._base += drop


def _clip(cluster: Cluster, released: int) -> Cluster:
    return cluster if cluster.start >= released else replace(cluster, start=released)


class MaskingTextFilter:
    """A `TextFilter` masking streamed answer text, with one StreamMasker per channel."""

    def __init__(self, step: Step, observe: Observe) -> None:
        self._step = step
        self._observe = observe
        self._maskers: dict[str, StreamMasker] = {}

    async def push(self, channel: str, text: str, final: bool) -> str:
        masker = self._maskers.get(channel)
        if masker is None:
            masker = self._maskers[channel] = StreamMasker(self._step)
        piece, groups = await masker.push(text, final)
        if groups:
            self._observe(groups)
        if final:
            del self._maskers[channel]
        return piece
