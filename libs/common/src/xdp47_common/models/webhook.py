"""Webhook subscriptions and their deliveries, as the API hands them out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, field_validator

from xdp47_common.models.base import ReadModel, WriteModel
from xdp47_common.rollout.decision import EventName

__all__ = [
    "DeliveryStatus",
    "Webhook",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookDeliveryRecord",
]

DeliveryStatus = Literal["pending", "delivered", "parked"]


class WebhookCreate(WriteModel):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="http(s) URL that receives a POST per event.",
    )
    events: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Rollout event names to deliver (e.g. wave_started, "
        "completed); empty: every event.",
    )
    description: str | None = Field(default=None, max_length=200)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        known = {e.value for e in EventName}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown event(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        return sorted(set(value))


class Webhook(ReadModel):
    id: UUID
    tenant: str
    url: str
    events: list[str]
    description: str | None = None
    created_by: str | None = None
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(
        description="Signs every delivery (HMAC-SHA256); shown only in this answer."
    )


class WebhookDeliveryRecord(ReadModel):
    id: UUID
    webhook_id: UUID
    event_id: UUID
    event: str
    rollout_id: UUID | None = None
    status: DeliveryStatus
    attempts: int
    redeliveries: int
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
