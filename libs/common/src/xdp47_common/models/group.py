"""Device groups: a named, per-tenant set of devices a rollout can target, either
static (a list of device ids) or dynamic (a saved selector, evaluated whenever a
rollout that targets it is planned); and the device counts of the inventory."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import Field, model_validator

from xdp47_common.models.base import DeviceId, Name, ReadModel, TenantId, WriteModel
from xdp47_common.models.device import Device
from xdp47_common.models.rollout import SelectorInput
from xdp47_common.selectors import SelectorJson

__all__ = [
    "MAX_STATIC_MEMBERS",
    "CountBucket",
    "DeviceCount",
    "DeviceGroup",
    "DeviceGroupCreate",
    "DeviceGroupUpdate",
    "GroupKind",
    "GroupMembers",
]

# One request names at most this many members (a bigger static group is a
# selector's job: label the devices).
MAX_STATIC_MEMBERS = 10_000
GroupName = Annotated[Name, Field(min_length=1, max_length=100)]
Members = Annotated[list[DeviceId], Field(max_length=MAX_STATIC_MEMBERS)]


class GroupKind(StrEnum):
    STATIC = "static"
    DYNAMIC = "dynamic"


class DeviceGroupCreate(WriteModel):
    """A static group lists ``devices``; a dynamic group saves a ``selector``."""

    tenant: TenantId
    name: GroupName
    selector: SelectorInput | None = Field(
        default=None,
        description="Dynamic group: the selector its members match (any form of "
        "docs/api.md#selectors), evaluated when a rollout is planned.",
    )
    devices: Members | None = Field(
        default=None, description="Static group: the ids of its members."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> DeviceGroupCreate:
        if (self.selector is None) == (self.devices is None):
            raise ValueError(
                "give either selector (a dynamic group) or devices (a static group)"
            )
        return self

    @property
    def kind(self) -> GroupKind:
        return GroupKind.STATIC if self.devices is not None else GroupKind.DYNAMIC


class DeviceGroupUpdate(WriteModel):
    """Rename, or replace the selector (dynamic) or the members (static)."""

    name: GroupName | None = None
    selector: SelectorInput | None = None
    devices: Members | None = None


class DeviceGroup(ReadModel):
    id: UUID
    tenant: str
    name: str
    kind: GroupKind
    selector: SelectorJson | None = Field(
        default=None, description="Dynamic groups: the saved selector (JSON form)."
    )
    selector_text: str | None = Field(
        default=None, description="The selector as text (k in (a,b), ...)."
    )
    count: int = Field(description="Members now (a dynamic group's live count).")
    created_at: datetime


class CountBucket(ReadModel):
    value: str | None = Field(
        description="The version, status, channel or label "
        "value; null: devices without one."
    )
    count: int


class DeviceCount(ReadModel):
    """How many devices a selector matches now, optionally split by a field."""

    selector: str = Field(description="The selector as understood (canonical text).")
    count: int
    by: str | None = None
    buckets: list[CountBucket] = Field(default_factory=list)


class GroupMembers(ReadModel):
    """A page of a group's members, with the group and its member count."""

    group: DeviceGroup
    count: int
    devices: list[Device]
