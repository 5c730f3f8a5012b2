"""Builds the progress read model (``xdp47_common.models.progress``) of a rollout.

Pure: the caller reads, in one snapshot, the devices per (wave, progress state,
skip reason) of the written waves, the plan's size of each wave and how many waves
are written, and the runs; this assembles what every surface shows. The rules:

- A wave not written yet (a later wave of the compact plan) holds the devices the
  plan gave it: ``waiting`` while the rollout can still reach it, ``not_started``
  once it ended.
- A run whose attempt has ended (a later attempt exists, or the rollout ended)
  has no device updating: the scheduler released those as skipped when the
  attempt ended, without moving the run's counters, so they count as skipped.
- ``not_updated`` (what an abort leaves on the old version) is every device of the
  current and later waves that has not succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xdp47_common.models.progress import (
    PROGRESS_STATES,
    ProgressState,
    RolloutProgress,
    RunProgress,
    StateCounts,
    WaveProgress,
)
from xdp47_common.models.rollout import Rollout, RolloutRun
from xdp47_common.rollout.status import TERMINAL_STATUSES

__all__ = ["CountRow", "StoredPlan", "build_progress", "run_progress"]


@dataclass(frozen=True)
class CountRow:
    """Devices of one wave in one progress state (and skip reason)."""

    wave: int
    state: ProgressState
    reason: str | None
    n: int
    late: int = 0  # of ``n``, late joiners


@dataclass(frozen=True)
class StoredPlan:
    """The compact plan of a started rollout: sizes per wave, waves written."""

    sizes: Sequence[int]
    materialised: int


def run_progress(run: RolloutRun, *, attempt_ended: bool) -> RunProgress:
    """A run with its devices still without a result as ``updating``, or, once
    its attempt ended, as ``skipped`` (released by the scheduler)."""
    open_ = max(run.eligible - run.succeeded - run.failed - run.skipped, 0)
    data = run.model_dump()
    if attempt_ended:
        data["skipped"] = run.skipped + open_
        return RunProgress(**data, updating=0)
    return RunProgress(**data, updating=open_)


def _counts(rows: Iterable[CountRow]) -> StateCounts:
    values: dict[str, int] = {s.value: 0 for s in PROGRESS_STATES}
    reasons: dict[str, int] = {}
    for row in rows:
        values[row.state.value] += row.n
        if row.state is ProgressState.SKIPPED:
            key = row.reason or "unknown"
            reasons[key] = reasons.get(key, 0) + row.n
    return StateCounts.model_validate({**values, "skipped_reasons": reasons})


def _sum(counts: Iterable[StateCounts]) -> StateCounts:
    values: dict[str, int] = {s.value: 0 for s in PROGRESS_STATES}
    reasons: dict[str, int] = {}
    for c in counts:
        for state in PROGRESS_STATES:
            values[state.value] += c.of(state)
        for reason, n in c.skipped_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    return StateCounts.model_validate({**values, "skipped_reasons": reasons})


def build_progress(
    rollout: Rollout,
    rows: Sequence[CountRow],
    plan: StoredPlan | None,
    runs: Sequence[RolloutRun],
) -> RolloutProgress:
    """The progress of ``rollout``.

    Args:
        rollout: The rollout as read with the rows.
        rows: Devices per wave, progress state and skip reason, of written waves.
        plan: Its stored plan; None before start (or for a rollout planned
            before compact plans, whose waves are all written).
        runs: Its runs, every attempt.

    Returns:
        Waves 1..``rollout.waves`` with their counts and latest run, and the runs.
    """
    ended = rollout.status in TERMINAL_STATUSES
    attempt = rollout.attempt
    by_wave: dict[int, list[CountRow]] = {}
    for row in rows:
        by_wave.setdefault(row.wave, []).append(row)
    if plan is not None:
        later = ProgressState.NOT_STARTED if ended else ProgressState.WAITING
        for wave in range(plan.materialised + 1, len(plan.sizes) + 1):
            if plan.sizes[wave - 1]:
                by_wave.setdefault(wave, []).append(
                    CountRow(wave, later, None, plan.sizes[wave - 1])
                )
    latest: dict[int, RolloutRun] = {}
    for run in runs:
        if run.wave not in latest or run.attempt >= latest[run.wave].attempt:
            latest[run.wave] = run
    waves: list[WaveProgress] = []
    for wave in range(1, rollout.waves + 1):
        counts = _counts(by_wave.get(wave, []))
        last = latest.get(wave)
        waves.append(
            WaveProgress(
                wave=wave,
                planned=plan.sizes[wave - 1]
                if plan is not None and wave <= len(plan.sizes)
                else None,
                total=counts.total,
                counts=counts,
                late=sum(r.late for r in by_wave.get(wave, [])),
                current=rollout.current_wave == wave and not ended,
                attempt=last.attempt if last else None,
                outcome=last.outcome if last else None,
                started_at=last.started_at if last else None,
                finished_at=last.finished_at if last else None,
            )
        )
    first_open = rollout.current_wave or 1
    not_updated = sum(
        w.total - w.counts.succeeded for w in waves if w.wave >= first_open
    )
    totals = _sum(w.counts for w in waves)
    return RolloutProgress(
        rollout_id=rollout.id,
        status=rollout.status,
        hold=rollout.hold,
        reason=rollout.reason,
        attempt=attempt,
        current_wave=rollout.current_wave,
        totals=totals,
        not_updated=0 if ended else not_updated,
        nothing_updated=ended and totals.succeeded == 0,
        late=sum(w.late for w in waves),
        waves=waves,
        runs=[
            run_progress(r, attempt_ended=ended or r.attempt < attempt) for r in runs
        ],
    )
