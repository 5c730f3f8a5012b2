"""The plan of a rollout as the API shows it: devices per wave, and who is left out.

For a draft the plan is a preview computed with the same SQL the scheduler uses to
start it; once started it is the stored targets with their state. Device lists are
capped per wave and per exclusion reason; the counts are always exact.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import Field

from xdp47_common.models.base import ReadModel
from xdp47_common.rollout.exclusions import Exclusion
from xdp47_common.rollout.status import RolloutStatus, TargetState

__all__ = ["PlanExclusion", "PlanWave", "PlannedDevice", "RolloutPlan"]


class PlannedDevice(ReadModel):
    device_id: str
    device_status: str = Field(description="unknown, online or offline, right now.")
    state: TargetState | None = Field(
        default=None, description="The target state once the rollout has started."
    )
    reason: str | None = None
    would_skip: bool = Field(
        default=False,
        description="Preview only: offline now, so skipped at its wave's start "
        "under skip_offline.",
    )


class PlanWave(ReadModel):
    wave: int
    size: int = Field(description="Devices in this wave (exact).")
    states: dict[str, int] = Field(
        default_factory=dict,
        description="Devices by target state (started), or online/offline (preview).",
    )
    devices: list[PlannedDevice]
    truncated: bool = Field(description="More devices than the listed ones.")


class PlanExclusion(ReadModel):
    device_id: str
    reason: Exclusion


class RolloutPlan(ReadModel):
    rollout_id: UUID
    status: RolloutStatus
    preview: bool = Field(
        description="True for a draft (what starting now would do); false once "
        "started (the stored targets)."
    )
    total: int = Field(description="Devices planned into waves.")
    skip_offline: bool = Field(description="The effective skip_offline.")
    waves: list[PlanWave]
    excluded_counts: dict[Exclusion, int] = Field(default_factory=dict)
    excluded: list[PlanExclusion] = Field(default_factory=list)
    excluded_truncated: bool = False
