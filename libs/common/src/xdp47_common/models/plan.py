"""The plan of a rollout as the API shows it: devices per wave, and who is left out.

For a draft the plan is a preview computed with the same SQL the scheduler uses to
start it; once started it is the stored targets with their state. Device lists are
capped per wave and per exclusion reason; the counts are always exact.
"""

from __future__ import annotations

from datetime import datetime
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
    late: bool = Field(
        default=False,
        description="Started only: a late joiner, given its target after its wave "
        "was written (the policy's late_joiners).",
    )
    window_open: bool | None = Field(
        default=None,
        description="Under maintenance windows: whether the window of the device's "
        "zone is open now (None: the policy has no windows).",
    )
    window_opens_at: datetime | None = Field(
        default=None,
        description="Under maintenance windows: when the device's next window "
        "opens in its zone (when open now: when the open window opened; None: "
        "not within 15 days, or no windows).",
    )
    timezone: str | None = Field(
        default=None,
        description="Under maintenance windows: the zone the device's window is "
        "read in (its reported zone, its timezone label, the tenant's default, UTC).",
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
    late: int = Field(
        default=0, description="Late joiners among the wave's devices (started)."
    )


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
