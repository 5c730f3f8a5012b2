"""The wave timeline's geometry: one bar per wave split by progress state, laid out
for the server-rendered SVG. Pure: the progress read model in, rectangles out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdp47_common.models import PROGRESS_STATES, WaveProgress

__all__ = ["BAR_WIDTH", "STATES", "Segment", "WaveBar", "wave_bars"]

BAR_WIDTH = 600
# Progress states in bar order: the words operators read, also the CSS classes
# and the data attributes of each wave.
STATES: tuple[str, ...] = tuple(s.value for s in PROGRESS_STATES)


@dataclass(frozen=True)
class Segment:
    state: str  # the operator's word, also the CSS class
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class WaveBar:
    wave: WaveProgress
    segments: tuple[Segment, ...]


def _segments(wave: WaveProgress) -> tuple[Segment, ...]:
    out: list[Segment] = []
    x = 0.0
    for state in PROGRESS_STATES:
        n = wave.counts.of(state)
        if n <= 0 or wave.total <= 0:
            continue
        width = BAR_WIDTH * n / wave.total
        out.append(Segment(state.value, n, round(x, 2), round(width, 2)))
        x += width
    return tuple(out)


def wave_bars(waves: Sequence[WaveProgress]) -> list[WaveBar]:
    """One bar per wave of the read model."""
    return [WaveBar(w, _segments(w)) for w in waves]
