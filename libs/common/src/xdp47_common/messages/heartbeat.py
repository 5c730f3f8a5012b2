"""Heartbeat contracts: what a device posts, and what ingest publishes for it.

A heartbeat carries the device's whole state (level-triggered), so a lost one is
healed by the next, and ``seq`` lets the consumer ignore one that arrives late.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_core import to_json

from xdp47_common.messages.envelope import Envelope, PreparedEnvelope
from xdp47_common.models.base import Text
from xdp47_common.models.device import Health, LastApply

__all__ = [
    "DesiredState",
    "Heartbeat",
    "HeartbeatBatch",
    "HeartbeatBody",
    "HeartbeatReceived",
    "heartbeat_json",
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


def heartbeat_json(body: HeartbeatBody, device_id: str, received_at: datetime) -> bytes:
    """The JSON of the ``Heartbeat`` of ``body``, ``device_id`` and
    ``received_at``, byte for byte what that model gives, without building it:
    they are ``Heartbeat``'s last two fields, appended to the body's own JSON.
    (On ingest's request path, building the model cost more than validating the
    body; ``HeartbeatBatch.prepared`` takes these.)"""
    return b"".join(
        (
            to_json(body)[:-1],
            b',"device_id":',
            to_json(device_id),
            b',"received_at":',
            to_json(received_at),
            b"}",
        )
    )


class HeartbeatReceived(Envelope):
    type: Literal["heartbeat.received"] = "heartbeat.received"
    version: Literal[1] = 1
    heartbeat: Heartbeat


class HeartbeatBatch(Envelope):
    """Several heartbeats of one tenant in one message: ingest's micro-batch.

    Ingest collects the heartbeats that arrive within a few milliseconds and
    publishes them as one persistent message with one confirm, which costs the
    broker and the consumer a fraction of a message per heartbeat. Each
    heartbeat keeps its own ``received_at``; consumers decode this beside
    ``HeartbeatReceived`` (same queue, same routing key ``heartbeat.<tenant>``).
    """

    type: Literal["heartbeat.batch"] = "heartbeat.batch"
    version: Literal[1] = 1
    heartbeats: Annotated[list[Heartbeat], Field(min_length=1, max_length=10_000)]

    @classmethod
    def prepared(cls, tenant: str, heartbeats: Sequence[bytes]) -> PreparedEnvelope:
        """This message, serialized, from heartbeats already serialized
        (``heartbeat_json``): the envelope's own JSON with them spliced into
        ``heartbeats``, its last field. Decodes as the model would encode it.

        Raises:
            ValueError: no heartbeats (a batch holds at least one).
        """
        if not heartbeats:
            raise ValueError("a heartbeat batch holds at least one heartbeat")
        shell = cls.model_construct(tenant=tenant, heartbeats=[])
        head = shell.model_dump_json().encode()  # … "heartbeats":[]}
        body = b"".join((head[:-2], b",".join(heartbeats), b"]}"))
        return PreparedEnvelope(
            shell.message_id, shell.type, shell.version, tenant, None, body
        )

    def received(self) -> list[HeartbeatReceived]:
        """One ``HeartbeatReceived`` per heartbeat (already validated: no copy
        is validated again), sharing this message's id and tenant."""
        return [
            HeartbeatReceived.model_construct(
                message_id=self.message_id,
                occurred_at=self.occurred_at,
                tenant=self.tenant,
                correlation_id=self.correlation_id,
                heartbeat=beat,
            )
            for beat in self.heartbeats
        ]


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
