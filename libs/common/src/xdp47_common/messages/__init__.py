"""Versioned wire contracts carried over RabbitMQ and the device protocol."""

from typing import Annotated

from pydantic import Field, TypeAdapter

from xdp47_common.messages.envelope import (
    Envelope,
    PreparedEnvelope,
    envelope_headers,
    envelope_json,
)
from xdp47_common.messages.heartbeat import (
    DesiredState,
    Heartbeat,
    HeartbeatBatch,
    HeartbeatBody,
    HeartbeatReceived,
)
from xdp47_common.messages.rollout import (
    AbortRollout,
    ApproveRollout,
    PauseRollout,
    PromoteRollout,
    ResumeRollout,
    RetryRollout,
    RollbackRollout,
    RolloutCommand,
    RolloutEvent,
    StartRollout,
)
from xdp47_common.messages.webhook import WebhookJob

__all__ = [
    "COMMAND_ADAPTER",
    "HEARTBEAT_ADAPTER",
    "AbortRollout",
    "ApproveRollout",
    "DesiredState",
    "Envelope",
    "Heartbeat",
    "HeartbeatBatch",
    "HeartbeatBody",
    "HeartbeatReceived",
    "PauseRollout",
    "PreparedEnvelope",
    "PromoteRollout",
    "ResumeRollout",
    "RetryRollout",
    "RollbackRollout",
    "RolloutCommand",
    "RolloutEvent",
    "StartRollout",
    "WebhookJob",
    "decode_heartbeats",
    "envelope_headers",
    "envelope_json",
]

# One decoder per queue; an unknown ``type`` fails validation and is dead-lettered.
COMMAND_ADAPTER: TypeAdapter[RolloutCommand] = TypeAdapter(
    Annotated[RolloutCommand, Field(discriminator="type")]
)
# What the heartbeats queue carries: ingest's batches (and single heartbeats
# from before it batched, decoded as batches of one).
HEARTBEAT_ADAPTER: TypeAdapter[HeartbeatReceived | HeartbeatBatch] = TypeAdapter(
    Annotated[HeartbeatReceived | HeartbeatBatch, Field(discriminator="type")]
)


def decode_heartbeats(body: bytes) -> HeartbeatBatch:
    """A message of the heartbeats queue as the one shape the write takes.

    Raises:
        pydantic.ValidationError: not a heartbeat message.
    """
    message = HEARTBEAT_ADAPTER.validate_json(body)
    return message if isinstance(message, HeartbeatBatch) else message.as_batch()
