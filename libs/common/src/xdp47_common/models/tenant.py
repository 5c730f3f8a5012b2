"""Tenant aggregate: the unit of isolation. Every other aggregate belongs to one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictBool, field_validator

from xdp47_common.models.base import Name, ReadModel, TenantId, WriteModel
from xdp47_common.rollout.windows import known_zone

__all__ = ["Tenant", "TenantCreate", "TenantSettings"]


class TenantCreate(WriteModel):
    id: TenantId = Field(description="Tenant id: lower-case letters, digits and '-'.")
    name: Annotated[Name, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Display name; defaults to the id."
    )


class TenantSettings(WriteModel):
    """The settings a platform operator changes on a tenant (absent: unchanged)."""

    four_eyes_approval: StrictBool | None = Field(
        default=None,
        description="Require that a rollout's approval comes from another token "
        "than the one that started it.",
    )
    default_timezone: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="The IANA time zone of the tenant's devices that report none "
        "(XDP47_DEVICE_TIMEZONE) and have no timezone label; their maintenance "
        "windows are read in it. An empty string clears it (UTC).",
        examples=["Europe/Berlin"],
    )

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v and not known_zone(v):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. Europe/Berlin)")
        return v


class Tenant(ReadModel):
    id: str
    name: str
    four_eyes_approval: bool = False
    default_timezone: str | None = None
    created_at: datetime
