"""Ingest settings: the shared control settings, read from ``XDP47_*``."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from xdp47_common.settings import ControlSettings

__all__ = ["IngestSettings"]


class IngestSettings(ControlSettings):
    """What ingest reads besides the shared settings."""

    ingest_server: Literal["uvicorn", "granian"] = Field(
        default="uvicorn",
        description="The HTTP server that runs ingest: uvicorn (HTTP in Python, "
        "the least CPU per request here) or granian (HTTP in Rust on a thread of "
        "its own: more requests per second of wall time, more CPU per request); "
        "the same app, endpoints and behaviour either way (docs/ingest.md).",
    )
    ingest_fast_lane: bool = Field(
        default=True,
        description="Answer the usual device heartbeat or poll inside uvicorn's "
        "HTTP protocol instead of through ASGI: the same checks, answers and "
        "metrics for less CPU per request; anything unusual still takes the "
        "ASGI path. Not used on granian, with tracing on or with the device "
        "rate limits in a shared storage (docs/ingest.md).",
    )
    ingest_retry_after: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=5,
        description="Retry-After seconds sent with a 503 when the broker or the "
        "database is unavailable.",
    )
    ingest_batch_max: Annotated[int, Field(ge=1, le=5000)] = Field(
        default=256,
        description="Most heartbeats published as one HeartbeatBatch message; 1 "
        "publishes every heartbeat as a batch of its own (no batching).",
    )
    ingest_batch_wait_ms: Annotated[float, Field(ge=0, le=100)] = Field(
        default=20.0,
        description="Milliseconds the first heartbeat of a batch waits for others "
        "before the batch is published (0: what arrived in the same loop turn). "
        "Longer windows make bigger batches (cheaper per heartbeat) and add at "
        "most this much latency; see docs/performance.md for the measured sweep.",
    )
    ingest_cache_size: Annotated[int, Field(ge=0, le=50_000_000)] = Field(
        default=1_000_000,
        description="Credentials whose identity and desired state each replica "
        "keeps in memory (about 250 bytes each: a million fit in ~250 MiB; "
        "bench/cache_memory.py); 0 turns the cache off. Entries are "
        "dropped by NOTIFY from PostgreSQL with the commit that changes them "
        "(docs/ingest.md).",
    )
    ingest_cache_ttl_s: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=600.0,
        description="Seconds a cached identity and desired state lives at most, "
        "whatever else happens; 0 turns the cache off.",
    )

    @model_validator(mode="after")
    def _presigned_urls_outlive_the_cache(self) -> Self:
        # A presigned URL is reused for half its life, then a cached answer may
        # carry it for ingest_cache_ttl_s more: a quarter is left for the device
        # to start its download.
        if (
            self.blob_store == "s3"
            and self.artifact_cdn_url is None
            and self.ingest_cache_ttl_s > self.s3_presign_ttl_s / 4
        ):
            raise ValueError(
                f"XDP47_INGEST_CACHE_TTL_S={self.ingest_cache_ttl_s:g} must be at "
                "most a quarter of XDP47_S3_PRESIGN_TTL_S="
                f"{self.s3_presign_ttl_s}: cached answers carry presigned URLs"
            )
        return self
