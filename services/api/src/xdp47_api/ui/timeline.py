"""The wave timeline's geometry: one bar per wave split by progress state, laid
out for the server-rendered SVG (``_timeline.html``). Pure: the progress read
model in, rectangles out.

Each wave is a row: its label and count on a line, the bar below, the times and
outcome under it. The SVG has no viewBox: text is laid out in CSS pixels and
keeps its size at any width, and the bar's segments are placed in percent of the
SVG's width, so the bar stretches instead. (A scaled drawing 930 units wide
shrank 13 px text to under 5 px on a 390 px phone.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdp47_common.models import PROGRESS_STATES, WaveProgress

__all__ = [
    "BAR_WIDTH",
    "ROW",
    "STATES",
    "Segment",
    "WaveBar",
    "timeline_height",
    "wave_bars",
]

BAR_WIDTH = 100  # segments are placed in percent of the bar (the SVG's width)


@dataclass(frozen=True)
class RowLayout:
    """Offsets in CSS pixels from the top of a wave's row."""

    height: int = 64
    label: int = 15  # baseline of "Wave n" and the count
    count_x: int = 84  # where the count starts, after "Wave 100 ▸"
    bar: int = 22
    bar_height: int = 20
    times: int = 57  # baseline of the times and outcome


ROW = RowLayout()
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
    top: int  # the row's top, in CSS pixels
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
    """One bar per wave of the read model, one row below the other."""
    return [WaveBar(w, i * ROW.height, _segments(w)) for i, w in enumerate(waves)]


def timeline_height(waves: int) -> int:
    """The SVG's height for ``waves`` rows."""
    return max(waves, 1) * ROW.height
