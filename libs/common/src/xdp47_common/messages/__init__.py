"""Versioned wire contracts carried over RabbitMQ and the device protocol."""

from typing import Annotated

from pydantic import Field, TypeAdapter

from xdp47_common.messages.envelope import Envelope, PreparedEnvelope, envelope_json
from xdp47_common.messages.heartbeat import (
    DesiredState,
    Heartbeat,
    HeartbeatBatch,
    HeartbeatBody,
    HeartbeatReceived,
    heartbeat_json,
)
from xdp47_common.messages.rollout import (
    AbortRollout,
    RetryRollout,
    RolloutCommand,
    RolloutEvent,
    StartRollout,
)

__all__ = [
    "COMMAND_ADAPTER",
    "HEARTBEAT_ADAPTER",
    "HEARTBEAT_MESSAGE_ADAPTER",
    "AbortRollout",
    "DesiredState",
    "Envelope",
    "Heartbeat",
    "HeartbeatBatch",
    "HeartbeatBody",
    "HeartbeatReceived",
    "PreparedEnvelope",
    "RetryRollout",
    "RolloutCommand",
    "RolloutEvent",
    "StartRollout",
    "envelope_json",
    "heartbeat_json",
]

# One decoder per queue; an unknown ``type`` fails validation and is dead-lettered.
COMMAND_ADAPTER: TypeAdapter[RolloutCommand] = TypeAdapter(
    Annotated[RolloutCommand, Field(discriminator="type")]
)
HEARTBEAT_ADAPTER: TypeAdapter[HeartbeatReceived] = TypeAdapter(HeartbeatReceived)
# What the heartbeats queue carries: single heartbeats and ingest's micro-batches.
HEARTBEAT_MESSAGE_ADAPTER: TypeAdapter[HeartbeatReceived | HeartbeatBatch] = (
    TypeAdapter(
        Annotated[HeartbeatReceived | HeartbeatBatch, Field(discriminator="type")]
    )
)
