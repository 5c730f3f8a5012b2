"""The wave timeline's geometry: one bar per wave split by device state, laid out
for the server-rendered SVG (``_timeline.html``). Pure: counts and runs in,
rectangles out.

Each wave is a row: its label and count on a line, the bar below, the times and
outcome under it. The SVG has no viewBox: text is laid out in CSS pixels and
keeps its size at any width, and the bar's segments are placed in percent of the
SVG's width, so the bar stretches instead. (A scaled drawing 930 units wide
shrank 13 px text to under 5 px on a 390 px phone.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdp47_common.models import RolloutRun
from xdp47_common.rollout.status import TargetState

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
# Target states in bar order, with the words operators read.
STATES: tuple[tuple[TargetState, str], ...] = (
    (TargetState.APPLIED, "succeeded"),
    (TargetState.FAILED, "failed"),
    (TargetState.SKIPPED, "skipped"),
    (TargetState.ASSIGNED, "updating"),
    (TargetState.PENDING, "pending"),
)


@dataclass(frozen=True)
class Segment:
    state: str  # the operator's word, also the CSS class
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class WaveBar:
    wave: int
    top: int  # the row's top, in CSS pixels
    total: int
    counts: dict[str, int]
    segments: tuple[Segment, ...]
    run: RolloutRun | None
    current: bool


def _segments(counts: Mapping[str, int], total: int) -> tuple[Segment, ...]:
    out: list[Segment] = []
    x = 0.0
    for _, word in STATES:
        n = counts.get(word, 0)
        if n <= 0 or total <= 0:
            continue
        width = BAR_WIDTH * n / total
        out.append(Segment(word, n, round(x, 2), round(width, 2)))
        x += width
    return tuple(out)


def wave_bars(
    waves: int,
    counts: Mapping[int, Mapping[TargetState, int]],
    runs: Sequence[RolloutRun],
    current_wave: int | None,
) -> list[WaveBar]:
    """Bars for waves 1..``waves``; a wave's run is its latest attempt."""
    latest: dict[int, RolloutRun] = {}
    for run in runs:
        if run.wave not in latest or run.attempt >= latest[run.wave].attempt:
            latest[run.wave] = run
    bars = []
    for wave in range(1, waves + 1):
        by_state = counts.get(wave, {})
        words = {word: int(by_state.get(state, 0)) for state, word in STATES}
        total = sum(words.values())
        wave_run = latest.get(wave)
        bars.append(
            WaveBar(
                wave=wave,
                top=(wave - 1) * ROW.height,
                total=total if total else (wave_run.eligible if wave_run else 0),
                counts=words,
                segments=_segments(words, total),
                run=wave_run,
                current=current_wave == wave,
            )
        )
    return bars


def timeline_height(waves: int) -> int:
    """The SVG's height for ``waves`` rows."""
    return max(waves, 1) * ROW.height
