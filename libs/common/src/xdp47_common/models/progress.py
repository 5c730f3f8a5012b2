"""The read model of a rollout's progress: what every surface (REST API, web UI,
CLI, demo) shows of it, so a device state has one name and one count everywhere.

``ProgressState`` is the operator's vocabulary of a device inside a rollout; it is
derived from the stored target state (``TargetState``), the rollout's status and
how far it got (``xdp47_common.rollout.progress`` builds the model;
``xdp47_api.repositories.rollout_progress`` holds the one SQL mapping).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from xdp47_common.models.base import ReadModel
from xdp47_common.models.device import DeviceAttempt
from xdp47_common.models.rollout import RolloutRun
from xdp47_common.rollout.status import RolloutHold, RolloutStatus, WaveOutcome

__all__ = [
    "PROGRESS_STATES",
    "ProgressState",
    "RolloutDevice",
    "RolloutProgress",
    "RunProgress",
    "StateCounts",
    "WaveProgress",
]


class ProgressState(StrEnum):
    """Where one device of a rollout stands, in the words operators read."""

    SUCCEEDED = "succeeded"  # runs the artifact (healthy, when the policy asks)
    FAILED = "failed"  # reported a failed apply, turned unhealthy, or timed out
    SKIPPED = "skipped"  # left out of its started wave; ``reason`` says why
    UPDATING = "updating"  # its wave started: told to update, no result yet
    WAITING = "waiting"  # planned into a wave of this rollout that has not started
    NOT_STARTED = "not_started"  # the rollout ended before the device's wave started


# Bar and column order on every surface.
PROGRESS_STATES: tuple[ProgressState, ...] = tuple(ProgressState)


class StateCounts(ReadModel):
    """Devices per progress state; every state is present (zeros included)."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    updating: int = 0
    waiting: int = 0
    not_started: int = 0
    skipped_reasons: dict[str, int] = Field(
        default_factory=dict, description="The skipped devices by reason."
    )

    @property
    def total(self) -> int:
        return sum(getattr(self, s.value) for s in PROGRESS_STATES)

    def of(self, state: ProgressState) -> int:
        return int(getattr(self, state.value))


class WaveProgress(ReadModel):
    """One wave: its devices by state, and its latest run (attempt)."""

    wave: int
    planned: int | None = Field(
        description="Devices the plan gave this wave when the rollout started "
        "(None before start)."
    )
    total: int = Field(description="Devices counted in the states below.")
    counts: StateCounts
    late: int = Field(
        default=0,
        description="Late joiners among the wave's devices (counted in the states "
        "too): devices given a target after the wave was written, per the "
        "policy's late_joiners.",
    )
    current: bool
    attempt: int | None = Field(description="The attempt of the wave's latest run.")
    outcome: WaveOutcome | None
    started_at: datetime | None
    finished_at: datetime | None


class RunProgress(RolloutRun):
    """A run (one wave of one attempt) with ``updating``: its devices without a
    result yet. Once its attempt has ended those were released as skipped, and
    ``skipped`` counts them."""

    updating: int


class RolloutProgress(ReadModel):
    """A rollout's progress as every surface shows it."""

    rollout_id: UUID
    status: RolloutStatus
    hold: RolloutHold | None = Field(
        default=None,
        description="paused, awaiting_approval or analysis_inconclusive while a "
        "running rollout is held.",
    )
    reason: str | None
    attempt: int
    current_wave: int | None
    totals: StateCounts
    not_updated: int = Field(
        description="Devices of the current and all later waves (planned or not) "
        "that have not applied the artifact: what an abort leaves on their version."
    )
    nothing_updated: bool = Field(
        description="The rollout ended and no device succeeded."
    )
    late: int = Field(
        default=0, description="Late joiners in all waves (the waves' ``late``)."
    )
    waves: list[WaveProgress]
    runs: list[RunProgress]


class RolloutDevice(ReadModel):
    """One device of a rollout (``GET /api/rollouts/{id}/devices``)."""

    device_id: str
    wave: int
    state: ProgressState
    reason: str | None
    device_status: str
    late: bool = Field(
        default=False,
        description="A late joiner: given its target after its wave was written.",
    )
    assigned_at: datetime | None
    finished_at: datetime | None
    from_artifact_id: UUID | None = Field(
        default=None,
        description="What the device ran when it was assigned: what a rollback "
        "sends it back to.",
    )
    from_version: str | None = None
    artifact_id: UUID | None = Field(
        default=None,
        description="The artifact this target sends the device to (a rollback's "
        "per-device previous artifact, else the rollout's).",
    )
    version: str | None = None
    device_attempt: int = Field(
        default=1,
        description="The device's try in this rollout attempt (per-device "
        "retries): 1, then one more per retry granted after a failed try.",
    )
    retry_after: datetime | None = Field(
        default=None,
        description="While a retry is scheduled: when the device may try again.",
    )
    attempts: list[DeviceAttempt] = Field(
        default_factory=list,
        description="The tries that failed, oldest first (code, message, time).",
    )
