"""Ingest settings: the shared control settings, read from ``XDP47_*``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from xdp47_common.settings import ControlSettings

__all__ = ["IngestSettings"]


class IngestSettings(ControlSettings):
    """What ingest reads besides the shared settings."""

    ingest_retry_after: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=5,
        description="Retry-After seconds sent with a 503 when the broker or the "
        "database is unavailable.",
    )
