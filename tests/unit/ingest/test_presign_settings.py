"""Ingest refuses a desired-state cache that would outlive presigned URLs."""

from __future__ import annotations

from typing import Any

import pytest

from xdp47_ingest.settings import IngestSettings

S3: dict[str, Any] = {"blob_store": "s3", "s3_bucket": "b"}


def test_cached_answers_must_leave_presigned_urls_time() -> None:
    with pytest.raises(ValueError, match="XDP47_INGEST_CACHE_TTL_S=600"):
        IngestSettings(**S3, s3_presign_ttl_s=1200, ingest_cache_ttl_s=600)
    ok = IngestSettings(**S3, s3_presign_ttl_s=2400, ingest_cache_ttl_s=600)
    assert ok.ingest_cache_ttl_s == 600


def test_a_cdn_or_the_filesystem_store_has_no_such_bound() -> None:
    IngestSettings(
        **S3,
        s3_presign_ttl_s=1200,
        ingest_cache_ttl_s=600,
        artifact_cdn_url="https://cdn.example",
    )
    IngestSettings(s3_presign_ttl_s=1200, ingest_cache_ttl_s=600)
