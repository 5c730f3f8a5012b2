"""Base classes for aggregates.

Read models ignore unknown fields; write models forbid them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from xdp47_common.selectors import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN

__all__ = [
    "DEVICE_ID_PATTERN",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "TENANT_ID_PATTERN",
    "DeviceId",
    "LabelKey",
    "LabelValue",
    "ReadModel",
    "TenantId",
    "WriteModel",
]

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# Device ids end up in URL paths, file names on the device and AMQP routing keys,
# so they keep to a conservative alphabet with no separators of any of those.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"

TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[
    str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)
]


class ReadModel(BaseModel):
    """What the system hands out: tolerant of fields added by newer versions."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)


class WriteModel(BaseModel):
    """What a client sends: an unknown field is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
