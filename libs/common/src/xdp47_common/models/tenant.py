"""Tenant aggregate: the unit of isolation. Every other aggregate belongs to one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from xdp47_common.models.base import Name, ReadModel, TenantId, WriteModel

__all__ = ["Tenant", "TenantCreate"]


class TenantCreate(WriteModel):
    id: TenantId = Field(description="Tenant id: lower-case letters, digits and '-'.")
    name: Annotated[Name, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Display name; defaults to the id."
    )


class Tenant(ReadModel):
    id: str
    name: str
    created_at: datetime
