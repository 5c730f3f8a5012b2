"""Policy aggregate: the gate settings of a rollout. A null field takes the
scheduler's default from its ``XDP47_SCHED_*`` environment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, StrictBool, ValidationInfo, field_validator

from xdp47_common.models.base import (
    Count,
    Name,
    NotBool,
    ReadModel,
    TenantId,
    WriteModel,
)
from xdp47_common.rollout.analysis import AnalysisPolicy
from xdp47_common.rollout.policy import LateJoiners, OnFailure
from xdp47_common.rollout.windows import parse_window

__all__ = ["Policy", "PolicyCreate", "PolicyFields"]


class PolicyFields(WriteModel):
    require_ok: StrictBool | None = Field(
        default=None,
        description="Count a device only once it reports healthy on the new version.",
    )
    skip_offline: StrictBool | None = Field(
        default=None, description="Skip devices offline at wave start."
    )
    grace_seconds: Annotated[int, Field(ge=0, le=86_400), NotBool] | None = Field(
        default=None, description="Wait this long after a wave starts before judging."
    )
    min_success_ratio: Annotated[float, Field(ge=0.0, le=1.0), NotBool] | None = Field(
        default=None,
        description="Share of a wave's eligible devices that must succeed.",
    )
    max_failures_per_wave: Count | None = Field(
        default=None, description="More failures than this in a wave fail the rollout."
    )
    abort_on_zero_eligible: StrictBool | None = Field(
        default=None,
        description="Abort the rollout when its plan has no eligible device or "
        "a wave lost all its devices (else: completed, 0 updated / wave skipped).",
    )
    wave_deadline_seconds: (
        Annotated[int, Field(ge=1, le=7 * 86_400), NotBool] | None
    ) = Field(
        default=None,
        description="A device told to update that neither succeeds nor fails within "
        "this time counts as failed (timed_out).",
    )
    on_failure: OnFailure | None = Field(
        default=None,
        description="When the rollout ends failed: stop (the default: nothing "
        "more) or rollback (the scheduler starts a rollback of it by itself, "
        "once: every device that applied the artifact goes back to what it ran "
        "before).",
    )
    max_device_retries: Annotated[int, Field(ge=0, le=10), NotBool] | None = Field(
        default=None,
        description="More tries a device gets after a failed download, verification "
        "or apply before it counts as failed (a SHA256 or signature mismatch, an "
        "incompatible artifact and a refused downgrade are never retried).",
    )
    retry_backoff_seconds: Annotated[int, Field(ge=0, le=86_400), NotBool] | None = (
        Field(
            default=None,
            description="Wait before a device's first retry; doubled for each "
            "further one.",
        )
    )
    retry_backoff_max_seconds: (
        Annotated[int, Field(ge=1, le=86_400), NotBool] | None
    ) = Field(default=None, description="The longest wait between a device's tries.")

    @field_validator("retry_backoff_max_seconds")
    @classmethod
    def _cap_not_below_base(cls, cap: int | None, info: ValidationInfo) -> int | None:
        # A field validator (not a model one), so the error names this field.
        base = info.data.get("retry_backoff_seconds")
        if base is not None and cap is not None and cap < base:
            raise ValueError(f"must be at least retry_backoff_seconds ({base})")
        return cap

    approval_before_waves: (
        Annotated[
            list[Annotated[int, Field(ge=2, le=100), NotBool]], Field(max_length=99)
        ]
        | None
    ) = Field(
        default=None,
        description="Waves (2 and up) that start only once approved "
        "(POST /api/rollouts/{id}:approve, scope rollouts:approve): the rollout "
        "waits, status running, hold awaiting_approval. Each must be at most the "
        "rollout's number of waves.",
        examples=[[2]],
    )

    @field_validator("approval_before_waves")
    @classmethod
    def _distinct_waves(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return None
        if len(set(v)) != len(v):
            raise ValueError("approval_before_waves lists a wave twice")
        return sorted(v)

    analysis: AnalysisPolicy | None = Field(
        default=None,
        description="Telemetry analysis: checks of a heartbeat metric of the "
        "wave's updated devices against devices not updated yet (null: none). "
        "A failing check fails the wave; too few devices on a side holds the "
        "rollout.",
        examples=[
            {
                "checks": [
                    "error_rate: updated - baseline <= 0.02",
                    "cpu: updated / baseline <= 1.3",
                ],
                "min_devices": 3,
            }
        ],
    )
    maintenance_windows: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=64)]],
            Field(min_length=1, max_length=20),
        ]
        | None
    ) = Field(
        default=None,
        description="Weekly ranges in each device's own time zone in which a "
        "started wave's device is told to update (null: at any time). Days "
        "(Mon, Mon-Fri, Fri-Mon, Mon,Wed, daily) and HH:MM-HH:MM; an end at or "
        "before the start crosses midnight. A wave's deadline counts from when "
        "the device's window opened.",
        examples=[["Mon-Fri 01:00-05:00", "Sat 22:00-02:00"]],
    )

    @field_validator("maintenance_windows")
    @classmethod
    def _windows_parse(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        return [parse_window(text).text() for text in v]

    late_joiners: LateJoiners | None = Field(
        default=None,
        description="A device that starts matching the running rollout after "
        "its wave was written: current_wave (a target in the wave running now), "
        "last_wave (the default: in the last wave, after every earlier gate "
        "passed) or ignore.",
    )


class PolicyCreate(PolicyFields):
    tenant: TenantId
    name: Annotated[Name, Field(min_length=1, max_length=100)]


class Policy(ReadModel):
    id: UUID
    tenant: str
    name: str
    require_ok: bool | None
    skip_offline: bool | None
    grace_seconds: int | None
    min_success_ratio: float | None
    max_failures_per_wave: int | None
    abort_on_zero_eligible: bool | None
    wave_deadline_seconds: int | None
    on_failure: OnFailure | None = None
    max_device_retries: int | None = None
    retry_backoff_seconds: int | None = None
    retry_backoff_max_seconds: int | None = None
    approval_before_waves: list[int] | None = None
    analysis: AnalysisPolicy | None = None
    maintenance_windows: list[str] | None = None
    late_joiners: LateJoiners | None = None
    created_at: datetime
