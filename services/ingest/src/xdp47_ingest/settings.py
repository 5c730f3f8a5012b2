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
    ingest_batch_max: Annotated[int, Field(ge=1, le=5000)] = Field(
        default=256,
        description="Most heartbeats published as one HeartbeatBatch message; 1 "
        "publishes every heartbeat as its own HeartbeatReceived (no batching).",
    )
    ingest_batch_wait_ms: Annotated[float, Field(ge=0, le=100)] = Field(
        default=20.0,
        description="Milliseconds the first heartbeat of a batch waits for others "
        "before the batch is published (0: what arrived in the same loop turn). "
        "Longer windows make bigger batches (cheaper per heartbeat) and add at "
        "most this much latency; see docs/performance.md for the measured sweep.",
    )
    ingest_cache_size: Annotated[int, Field(ge=0, le=50_000_000)] = Field(
        default=200_000,
        description="Credentials whose identity and desired state each replica "
        "keeps in memory (about 1 KB each); 0 turns the cache off. Entries are "
        "dropped by NOTIFY from PostgreSQL with the commit that changes them "
        "(docs/ingest.md).",
    )
    ingest_cache_ttl_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=600.0,
        description="Seconds a cached identity and desired state lives at most, "
        "whatever else happens; 0 turns the cache off.",
    )
