"""Artifact aggregate: a release a device can download, pinned by its SHA256."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AnyHttpUrl,
    BeforeValidator,
    Field,
    WithJsonSchema,
    field_validator,
)

from xdp47_common.compat import coerce_compatible
from xdp47_common.models.base import (
    Name,
    NotBool,
    ReadModel,
    TenantId,
    Text,
    WriteModel,
)

__all__ = ["Artifact", "ArtifactCreate"]

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class ArtifactCreate(WriteModel):
    tenant: TenantId
    uri: AnyHttpUrl = Field(description="Where devices download it: http or https.")
    sha256: Sha256Hex = Field(description="SHA256 of the content, 64 hex characters.")
    size: Annotated[int, Field(ge=0, le=1 << 40), NotBool] | None = Field(
        default=None, description="Size in bytes; devices refuse more."
    )
    type: Annotated[Name, Field(min_length=1, max_length=64)] = "application"
    version: Annotated[Name, Field(min_length=1, max_length=128)] | None = None
    signature: Annotated[Text, Field(max_length=512)] | None = Field(
        default=None, description="Base64 Ed25519 signature over the raw SHA256 digest."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    compatible: Annotated[
        dict[str, list[str]],
        BeforeValidator(coerce_compatible),
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "object",
                        "additionalProperties": {
                            "type": "array",
                            "items": {"type": "string"},
                        },
                        "examples": [
                            {"device_type": ["kiosk-k2", "kiosk-k3"], "arch": ["arm64"]}
                        ],
                    },
                    {
                        "type": "string",
                        "examples": ["arch=arm64,device_type in (kiosk-k2,kiosk-k3)"],
                    },
                ]
            },
            mode="validation",
        ),
    ] = Field(
        default_factory=dict,
        description="What the artifact runs on: every key must be among a device's "
        "properties with one of the values. {} = any device. Planning leaves "
        "other devices out (incompatible) and agents refuse it.",
    )

    @field_validator("sha256")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(str(v)) > 16_384:
            raise ValueError("metadata must serialise to at most 16 KiB")
        if "\\u0000" in json.dumps(v):  # jsonb cannot hold NUL
            raise ValueError("must not contain the NUL character (\\u0000)")
        return v


class Artifact(ReadModel):
    id: UUID
    tenant: str
    uri: str
    sha256: str
    size: int | None
    type: str
    version: str | None
    signature: str | None
    metadata: dict[str, Any]
    compatible: dict[str, list[str]] = Field(default_factory=dict)
    created_at: datetime
