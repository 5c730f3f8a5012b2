"""Heartbeat contracts: what a device posts, and what ingest publishes for it.

A heartbeat carries the device's whole state (level-triggered), so a lost one is
healed by the next, and ``seq`` lets the consumer ignore one that arrives late.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from xdp47_common.messages.envelope import Envelope
from xdp47_common.models.device import Health, LastApply

__all__ = ["DesiredState", "Heartbeat", "HeartbeatBody", "HeartbeatReceived"]

MetricValue = float | int | str | bool | None


class HeartbeatBody(BaseModel):
    """The request body of ``POST /api/devices/{id}/heartbeat``."""

    model_config = ConfigDict(extra="forbid")

    seq: Annotated[int, Field(ge=0, le=2**62)] = Field(
        description="Monotonic per device; an older one never overwrites a newer one."
    )
    current_version: Annotated[str, Field(max_length=128)] | None = None
    current_artifact_id: UUID | None = None
    last_apply: LastApply | None = None
    health: Health = Health.UNKNOWN
    metrics: Annotated[
        dict[Annotated[str, Field(max_length=64)], MetricValue], Field(max_length=64)
    ] = Field(default_factory=dict)


class Heartbeat(HeartbeatBody):
    """The device's state as ingest saw it; embedded in ``HeartbeatReceived``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    device_id: str
    received_at: AwareDatetime


class HeartbeatReceived(Envelope):
    type: Literal["heartbeat.received"] = "heartbeat.received"
    version: Literal[1] = 1
    heartbeat: Heartbeat


class DesiredState(BaseModel):
    """What ingest answers a heartbeat with: the artifact to run, or nothing to do."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["none", "update"]
    artifact_id: UUID | None = None
    version: str | None = None
    uri: str | None = None
    sha256: str | None = None
    size: int | None = None
    signature: str | None = None
    rollout_id: UUID | None = None
    heartbeat_interval: float | None = Field(
        default=None,
        description="Seconds until the next heartbeat, if the server asks.",
    )
    server_time: datetime | None = None
