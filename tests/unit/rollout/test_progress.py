"""The progress read model's rules (``xdp47_common.rollout.progress``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from xdp47_common.models import ProgressState, Rollout, RolloutRun
from xdp47_common.rollout.progress import CountRow, StoredPlan, build_progress

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RID = uuid.UUID(int=3)


def rollout(status: str, current_wave: int | None, **over: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "id": RID,
            "tenant": "t",
            "name": None,
            "artifact_id": uuid.UUID(int=1),
            "policy_id": None,
            "selector": {},
            "channel": "stable",
            "waves": 4,
            "wave_percentages": None,
            "status": status,
            "reason": None,
            "current_wave": current_wave,
            "created_at": NOW,
            "started_at": NOW,
            "finished_at": None,
        }
        | over
    )


def run(wave: int, attempt: int = 1, **over: Any) -> RolloutRun:
    base = {
        "rollout_id": RID,
        "wave": wave,
        "attempt": attempt,
        "eligible": 3,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "started_at": NOW,
        "finished_at": None,
        "outcome": None,
        "reason": None,
    }
    return RolloutRun.model_validate(base | over)


S, U, W = ProgressState.SUCCEEDED, ProgressState.UPDATING, ProgressState.WAITING


def test_abort_counts_every_device_of_the_current_and_later_waves() -> None:
    """4 waves of 3, in wave 2: 9 devices are not updated, though only waves 1 to 3
    have target rows (observation 3 counted 3)."""
    rows = [CountRow(1, S, None, 3), CountRow(2, U, None, 3), CountRow(3, W, None, 3)]
    p = build_progress(
        rollout("running", 2), rows, StoredPlan([3, 3, 3, 3], 3), [run(1), run(2)]
    )
    assert p.not_updated == 9
    assert [w.counts.waiting for w in p.waves] == [0, 0, 3, 3]
    assert [w.planned for w in p.waves] == [3, 3, 3, 3]


def test_waves_an_ended_rollout_never_reached_are_not_started() -> None:
    rows = [CountRow(1, ProgressState.FAILED, None, 3)]
    p = build_progress(rollout("failed", 1), rows, StoredPlan([3, 3, 3, 3], 1), [])
    assert [w.counts.not_started for w in p.waves] == [0, 3, 3, 3]
    assert [w.counts.waiting for w in p.waves] == [0, 0, 0, 0]
    assert p.not_updated == 0


def test_an_ended_attempt_has_no_device_updating() -> None:
    """The devices still updating when an attempt ended were released as skipped;
    the run's counters never moved, so the read model counts them."""
    runs = [run(1, failed=1, outcome="failed"), run(1, attempt=2, eligible=1)]
    p = build_progress(rollout("running", 1, attempt=2), [], None, runs)
    first, second = p.runs
    assert (first.skipped, first.updating) == (2, 0)
    assert (second.skipped, second.updating) == (0, 1)


def test_skipped_devices_are_counted_by_reason() -> None:
    rows = [
        CountRow(1, ProgressState.SKIPPED, "offline", 2),
        CountRow(1, ProgressState.SKIPPED, "rollout_failed", 1),
    ]
    p = build_progress(rollout("failed", 1), rows, None, [])
    assert p.waves[0].counts.skipped == 3
    assert p.waves[0].counts.skipped_reasons == {"offline": 2, "rollout_failed": 1}
    assert p.totals.skipped_reasons == {"offline": 2, "rollout_failed": 1}


def test_nothing_updated_only_once_ended_without_a_success() -> None:
    empty = StoredPlan([0, 0, 0, 0], 0)
    assert build_progress(rollout("completed", None), [], empty, []).nothing_updated
    assert not build_progress(rollout("running", 1), [], empty, []).nothing_updated
    one = [CountRow(1, S, None, 1)]
    assert not build_progress(rollout("completed", 1), one, None, []).nothing_updated
