"""Device aggregate: identity, labels, reported state and desired state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BeforeValidator, Field, field_validator

from xdp47_common.models.base import (
    INT32_MAX,
    DeviceId,
    LabelKey,
    LabelValue,
    NotBool,
    ReadModel,
    TenantId,
    Text,
    WriteModel,
)
from xdp47_common.models.reasons import FAILURE_CODE_PATTERN
from xdp47_common.rollout.windows import known_zone

__all__ = [
    "ApplyResult",
    "Device",
    "DeviceAttempt",
    "DeviceClaim",
    "DeviceClaimed",
    "DeviceDetail",
    "DeviceSort",
    "DeviceStatus",
    "Health",
    "LastApply",
    "RecentHeartbeat",
    "TargetHistoryEntry",
]

Labels = dict[LabelKey, LabelValue]
ChannelName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]


class DeviceStatus(StrEnum):
    UNKNOWN = "unknown"  # claimed, never heard from
    ONLINE = "online"
    OFFLINE = "offline"  # silent for longer than the offline timeout


class DeviceSort(StrEnum):
    """Orders of the device list (``sort``); each pages by (key, id)."""

    ID = "id"
    LAST_SEEN = "last_seen"  # most recently seen first
    VERSION = "version"  # current_version, text order; none first
    STATUS = "status"


class Health(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"
    UNKNOWN = "unknown"


class ApplyResult(StrEnum):
    OK = "ok"
    FAILED = "failed"


def _not_a_number(value: Any) -> Any:
    """Refuse a number where a date-time is due: pydantic would read ``0`` as
    seconds since 1970, a date the sender never meant (the schema says text)."""
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 date-time text, not a number")
    return value


class LastApply(ReadModel):
    """The outcome of the device's most recent attempt to apply an artifact."""

    artifact_id: UUID
    result: ApplyResult
    reason: Annotated[Text, Field(max_length=500)] | None = Field(
        default=None, description="A bounded message saying what went wrong."
    )
    at: Annotated[datetime, BeforeValidator(_not_a_number)] | None = None
    code: Annotated[str, Field(pattern=FAILURE_CODE_PATTERN)] | None = Field(
        default=None,
        description="Why the apply failed, as a code (xdp47_common.models."
        "reasons.FailureCode); absent from agents that predate codes.",
    )
    rollout_id: UUID | None = Field(
        default=None,
        description="The rollout whose desired state this apply answered (from the "
        "desired state), so a late report is never taken for a later attempt's.",
    )
    attempt: Annotated[int, Field(ge=1, le=INT32_MAX), NotBool] | None = Field(
        default=None,
        description="The attempt of that rollout (the desired state's attempt).",
    )
    device_attempt: Annotated[int, Field(ge=1, le=INT32_MAX), NotBool] | None = Field(
        default=None,
        description="The device's own try within that rollout attempt (the "
        "desired state's device_attempt), so a late report of an earlier try "
        "never fails a later one.",
    )


class DeviceClaim(WriteModel):
    tenant: TenantId
    labels: Annotated[Labels, Field(max_length=64)] = Field(default_factory=dict)
    properties: Annotated[Labels, Field(max_length=32)] = Field(
        default_factory=dict,
        description="What the device is (device_type, arch, ...), from the agent's "
        "XDP47_DEVICE_PROPERTIES: checked against an artifact's compatible.",
    )
    device_id: DeviceId | None = Field(
        default=None,
        description="Claim this id (idempotent); a new id is generated when omitted.",
    )
    channel: ChannelName = "stable"
    timezone: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="The device's IANA time zone (the agent's "
        "XDP47_DEVICE_TIMEZONE): a rollout's maintenance windows are read in it.",
        examples=["Europe/Berlin"],
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None and not known_zone(v):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. Europe/Berlin)")
        return v


class DeviceClaimed(ReadModel):
    device_id: str
    tenant: str
    credential: str = Field(
        description="Device credential for heartbeats. Shown once; claiming again "
        "rotates it."
    )
    ingest_url: str | None = Field(
        default=None,
        description="Base URL to send heartbeats to (the api's "
        "XDP47_INGEST_PUBLIC_URL); null: the URL the claim went to.",
    )


class Device(ReadModel):
    id: str
    tenant: str
    labels: dict[str, str]
    properties: dict[str, str] = Field(default_factory=dict)
    channel: str
    status: DeviceStatus
    health: Health
    current_version: str | None
    current_artifact_id: UUID | None
    desired_artifact_id: UUID | None
    desired_version: str | None
    desired_rollout_id: UUID | None
    last_apply: LastApply | None
    last_seq: int
    last_seen: datetime | None
    last_metrics: dict[str, Any] | None
    claimed_at: datetime
    timezone: str | None = Field(
        default=None, description="The zone the device's agent reported, if any."
    )


class RecentHeartbeat(ReadModel):
    """One of a device's latest heartbeats, as the scheduler stored it."""

    seq: int
    at: datetime
    health: Health
    metrics: dict[str, Any] = Field(default_factory=dict)


class DeviceAttempt(ReadModel):
    """One failed try of a device at a rollout's target (per-device retries)."""

    attempt: int = Field(description="The try (device_attempt), 1 = the first.")
    code: str | None = Field(default=None, description="The failure code reported.")
    reason: str | None = Field(default=None, description="The device's message.")
    at: datetime | None = Field(default=None, description="When it was judged.")


class TargetHistoryEntry(ReadModel):
    """What one rollout did with the device in one attempt.

    An outcome (``applied``, ``failed``, ``skipped``) is recorded when it is
    reached; a ``pending`` or ``assigned`` entry is the device's current target.
    """

    rollout_id: UUID
    rollout_name: str | None = None
    version: str | None = Field(
        default=None, description="The rollout's artifact version."
    )
    attempt: int
    wave: int
    state: str
    reason: str | None = Field(
        default=None, description="A code: a FailureCode or a skip reason."
    )
    reason_detail: str | None = Field(
        default=None, description="The bounded message beside it."
    )
    reason_text: str | None = Field(
        default=None, description="The human sentence for the code."
    )
    assigned_at: datetime | None = None
    finished_at: datetime | None = None
    device_attempt: int | None = Field(
        default=None,
        description="The device's try at this target (1, then one more per "
        "per-device retry); distinct from the rollout's attempt.",
    )
    attempts: list[DeviceAttempt] = Field(
        default_factory=list,
        description="The tries that failed, oldest first, each with its code, "
        "message and time.",
    )
    retry_after: datetime | None = Field(
        default=None,
        description="While a retry is scheduled: when the device may try again.",
    )


class DeviceDetail(Device):
    """``GET /api/devices/{id}``: the device, its latest heartbeats (newest
    first) and its rollout history (newest first)."""

    last_apply_text: str | None = Field(
        default=None, description="The human sentence for last_apply.code."
    )
    recent_heartbeats: list[RecentHeartbeat] = Field(default_factory=list)
    rollout_history: list[TargetHistoryEntry] = Field(default_factory=list)
