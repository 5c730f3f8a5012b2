"""The versioned message envelope every AMQP message carries.

Adding an optional field keeps ``version``; renaming, removing or retyping a field
needs a new model with the next version, decoded beside the old one until it retires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from xdp47_common.clock import utcnow

__all__ = ["Envelope", "PreparedEnvelope", "envelope_headers", "envelope_json"]


class Envelope(BaseModel):
    """Fields common to every message; subclasses pin ``type`` with a Literal."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: UUID = Field(default_factory=uuid4)
    type: str
    version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    tenant: str
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedEnvelope:
    """An envelope already serialized: the ``body`` is its JSON, the other fields
    are what the bus puts in the message's properties. A hot path that builds
    the JSON from parts (``HeartbeatBatch.prepared``) publishes this instead of
    building the model only to serialize it."""

    message_id: UUID
    type: str
    version: int
    tenant: str
    correlation_id: str | None
    body: bytes


def envelope_json(envelope: Envelope | PreparedEnvelope) -> bytes:
    """What goes on the wire for ``envelope``."""
    if isinstance(envelope, PreparedEnvelope):
        return envelope.body
    return envelope.model_dump_json().encode()


def envelope_headers(
    envelope: Envelope | PreparedEnvelope,
) -> dict[str, Any]:
    """The message headers every bus adapter sends with ``envelope`` (beside its
    ``message_id``, ``type`` and ``correlation_id`` properties): the one place
    to add a header that travels with every message."""
    return {"x-version": envelope.version, "x-tenant": envelope.tenant}
