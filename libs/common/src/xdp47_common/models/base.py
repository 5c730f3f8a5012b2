"""Base classes for aggregates.

Read models ignore unknown fields; write models forbid them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from xdp47_common.selectors import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN

__all__ = [
    "DEVICE_ID_PATTERN",
    "INT32_MAX",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "NAME_PATTERN",
    "NUL_FREE_PATTERN",
    "TENANT_ID_PATTERN",
    "Count",
    "DeviceId",
    "LabelKey",
    "LabelValue",
    "Name",
    "NotBool",
    "ReadModel",
    "TenantId",
    "Text",
    "WriteModel",
]

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# Device ids end up in URL paths, file names on the device and AMQP routing keys,
# so they keep to a conservative alphabet with no separators of any of those.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"

# PostgreSQL's text and jsonb cannot hold NUL (U+0000): refused by the schema,
# naming the field, instead of by the driver in words no client should see.
NUL_FREE_PATTERN = r"^[^\x00]*$"
# A name: no NUL, and at least one character that is not white space. Write
# models strip white space first, so the pattern says what is accepted.
NAME_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
# The largest value of an integer column; every integer a client sends is
# bounded by it or less, so none reaches the driver out of range.
INT32_MAX = 2**31 - 1

Text = Annotated[str, StringConstraints(pattern=NUL_FREE_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


def _refuse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


# Pydantic reads ``true`` as 1 for a number; no client means that. (Numbers in
# text stay accepted: the UI's forms send them so and get pydantic's range
# messages.)
NotBool = BeforeValidator(_refuse_bool)
# A count a client sends, within an int32 column.
Count = Annotated[int, Field(ge=0, le=INT32_MAX), NotBool]

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
