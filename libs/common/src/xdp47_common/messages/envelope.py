"""The versioned message envelope every AMQP message carries.

Adding an optional field keeps ``version``; renaming, removing or retyping a field
needs a new model with the next version, decoded beside the old one until it retires.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from xdp47_common.clock import utcnow

__all__ = ["Envelope"]


class Envelope(BaseModel):
    """Fields common to every message; subclasses pin ``type`` with a Literal."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: UUID = Field(default_factory=uuid4)
    type: str
    version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    tenant: str
    correlation_id: str | None = None
