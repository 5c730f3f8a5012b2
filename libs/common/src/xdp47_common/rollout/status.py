"""Status vocabularies of rollouts, waves and per-device targets.

These enums are the single spelling shared by the pure core, the database CHECK
constraints (see ``migrations/0001_initial.sql``), the API and the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = [
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "RolloutHold",
    "RolloutKind",
    "RolloutStatus",
    "TargetState",
    "WaveOutcome",
]


class RolloutStatus(StrEnum):
    """Lifecycle: ``draft -> running -> completed|partial|failed|aborted``."""

    DRAFT = "draft"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    ABORTED = "aborted"


class RolloutKind(StrEnum):
    """What a rollout does: send its artifact (``rollout``), or send the devices
    that applied another rollout's artifact back to what each ran before
    (``rollback``, naming that rollout in ``rollback_of``)."""

    ROLLOUT = "rollout"
    ROLLBACK = "rollback"


TERMINAL_STATUSES: frozenset[RolloutStatus] = frozenset(
    {
        RolloutStatus.COMPLETED,
        RolloutStatus.PARTIAL,
        RolloutStatus.FAILED,
        RolloutStatus.ABORTED,
    }
)

# Retry reopens a finished rollout that left failed or skipped devices behind; it is
# the only way out of a terminal status and it starts a new attempt of those waves.
TRANSITIONS: Mapping[RolloutStatus, frozenset[RolloutStatus]] = {
    RolloutStatus.DRAFT: frozenset({RolloutStatus.RUNNING, RolloutStatus.ABORTED}),
    RolloutStatus.RUNNING: frozenset(
        {
            RolloutStatus.COMPLETED,
            RolloutStatus.PARTIAL,
            RolloutStatus.FAILED,
            RolloutStatus.ABORTED,
        }
    ),
    RolloutStatus.COMPLETED: frozenset(),
    RolloutStatus.PARTIAL: frozenset({RolloutStatus.RUNNING}),
    RolloutStatus.FAILED: frozenset({RolloutStatus.RUNNING}),
    RolloutStatus.ABORTED: frozenset(),
}


class RolloutHold(StrEnum):
    """Why a ``running`` rollout stands still (its sub-status; None: it moves).

    The status stays ``running`` while held, so the devices already told keep
    their desired state and go on updating; what a hold stops is the scheduler:
    no gate judges the current wave and no new wave starts.

    - ``paused``: by an operator's pause, until resume. The wave's deadline and
      grace do not run meanwhile (resume shifts the wave's clock by the time
      spent paused).
    - ``awaiting_approval``: the current wave passed and the next one is listed in
      the policy's ``approval_before_waves``; it starts on approve.
    - ``analysis_inconclusive``: every device of the current wave finished but a
      telemetry analysis check had too few devices on a side to be judged; the
      reason names the check and the counts. It waits for an operator's resume
      (which judges the wave again on the aggregates gathered meanwhile), never
      lifts itself: a release the analysis could not judge does not go on
      unseen.
    """

    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    ANALYSIS_INCONCLUSIVE = "analysis_inconclusive"


class TargetState(StrEnum):
    """State of one device inside one rollout."""

    PENDING = "pending"  # planned into a wave that has not started yet
    ASSIGNED = "assigned"  # its wave started; the device was told to update
    APPLIED = "applied"  # the device reported the new version (healthy, if required)
    FAILED = "failed"  # the device reported a failed apply, or timed out
    SKIPPED = "skipped"  # offline at wave start under skip_offline, or aborted


class WaveOutcome(StrEnum):
    """Verdict of a finished wave, recorded on its RolloutRun."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    SKIPPED = "skipped"  # no eligible device in the wave
