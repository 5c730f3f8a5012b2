"""Tenant aggregate: the unit of isolation. Every other aggregate belongs to one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictBool

from xdp47_common.models.base import Name, ReadModel, TenantId, WriteModel

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


class Tenant(ReadModel):
    id: str
    name: str
    four_eyes_approval: bool = False
    created_at: datetime
