"""Heartbeat contracts: what a device posts, and what ingest publishes for it.

A heartbeat carries the device's whole state (level-triggered), so a lost one is
healed by the next, and ``seq`` lets the consumer ignore one that arrives late.
Ingest publishes ``HeartbeatBatch`` (built by ``messages.wire``); it is the one
shape a heartbeat has from there to the scheduler's write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from xdp47_common.messages.envelope import Envelope
from xdp47_common.models.base import Text
from xdp47_common.models.device import Health, LastApply

__all__ = [
    "DesiredState",
    "Heartbeat",
    "HeartbeatBatch",
    "HeartbeatBody",
    "HeartbeatReceived",
]

# Metric integers within int64: what every consumer of a sample can hold.
MetricValue = (
    float | Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | Text | bool | None
)


class HeartbeatBody(BaseModel):
    """The request body of ``POST /api/devices/{id}/heartbeat``."""

    model_config = ConfigDict(extra="forbid")

    seq: Annotated[int, Field(strict=True, ge=0, le=2**62)] = Field(
        description="Monotonic per device; an older one never overwrites a newer one."
    )
    current_version: Annotated[Text, Field(max_length=128)] | None = None
    current_artifact_id: UUID | None = None
    last_apply: LastApply | None = None
    health: Health = Health.UNKNOWN
    metrics: Annotated[
        dict[Annotated[Text, Field(max_length=64)], MetricValue], Field(max_length=64)
    ] = Field(default_factory=dict)


class Heartbeat(HeartbeatBody):
    """The device's state as ingest saw it; embedded in ``HeartbeatReceived``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    device_id: str
    received_at: AwareDatetime


# One heartbeat in one message: what ingest published before it batched. Still
# decoded (a published contract retires only once no producer is left), as the
# batch of one it is (``as_batch``). (Comments, not a docstring: a docstring is
# the published schema's description.)
class HeartbeatReceived(Envelope):
    type: Literal["heartbeat.received"] = "heartbeat.received"
    version: Literal[1] = 1
    heartbeat: Heartbeat

    def as_batch(self) -> HeartbeatBatch:
        return HeartbeatBatch.model_construct(
            message_id=self.message_id,
            occurred_at=self.occurred_at,
            tenant=self.tenant,
            correlation_id=self.correlation_id,
            heartbeats=[self.heartbeat],
        )


class HeartbeatBatch(Envelope):
    """Several heartbeats of one tenant in one message: ingest's micro-batch.

    Ingest collects the heartbeats that arrive within a few milliseconds and
    publishes them as one persistent message with one confirm, which costs the
    broker and the consumer a fraction of a message per heartbeat. Each
    heartbeat keeps its own ``received_at``; consumers decode this beside
    ``HeartbeatReceived`` (same queue, same routing key ``heartbeat.<tenant>``).
    """

    # (The docstring is the published schema's description.) With
    # XDP47_INGEST_BATCH_MAX=1 a batch holds one heartbeat; built on the hot
    # path by ``messages.wire.heartbeat_batch``.

    type: Literal["heartbeat.batch"] = "heartbeat.batch"
    version: Literal[1] = 1
    heartbeats: Annotated[list[Heartbeat], Field(min_length=1, max_length=10_000)]


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
    compatible: dict[str, list[str]] | None = Field(
        default=None,
        description="What the artifact runs on ({key: [values]}); the agent "
        "refuses it (reason incompatible) unless its properties match.",
    )
    rollout_id: UUID | None = None
    attempt: int | None = Field(
        default=None,
        ge=1,
        description="The attempt of the rollout asking for the artifact (1, then one "
        "more per retry); null when no running rollout asks. A retry names the same "
        "rollout and artifact: this is how a device that refused the bytes knows "
        "it is asked again.",
    )
    rollback: bool = Field(
        default=False,
        description="True when a rollback rollout asks for the artifact: the "
        "agent then accepts a version lower than the one it applied (it refuses "
        "such a downgrade otherwise, reason downgrade).",
    )
    device_attempt: int | None = Field(
        default=None,
        ge=1,
        description="The device's own try within this rollout attempt (1, then one "
        "more per per-device retry the scheduler grants after a failed try; a "
        "rollout retry starts it at 1 again); null when no running rollout asks. "
        "The agent reports it back in last_apply.device_attempt and tries each "
        "one once.",
    )
    retry_after: datetime | None = Field(
        default=None,
        description="Not before this time (the server's clock, like server_time) "
        "may the device make this try; null: at once. The agent waits "
        "retry_after - server_time from when it got the answer.",
    )
    window_opens_at: datetime | None = Field(
        default=None,
        description="A running rollout waits for this device's maintenance "
        "window, which opens then (the server's clock): until it does, the "
        "answer names what the device keeps running, nothing new.",
    )
    heartbeat_interval: float | None = Field(
        default=None,
        description="Seconds until the next heartbeat, if the server asks.",
    )
    server_time: datetime | None = None
    device_id: str | None = Field(
        default=None,
        description="The device this answer is for; an agent refuses an answer "
        "naming another device.",
    )
