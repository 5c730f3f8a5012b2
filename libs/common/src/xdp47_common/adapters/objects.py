"""The S3-compatible bucket of artifact bytes, as the api and ingest both see it.

One place builds the ``obstore`` client from the settings (``s3_store``), names
the content-addressed key of a blob (``blob_key``: ``<prefix>sha256/<ab>/<hex>``,
so the same bytes are one object whoever uploads them) and makes the link a device
downloads from (``ArtifactLinks``): the operator's CDN base URL plus the key, or
else a presigned GET URL. The api writes and reads the bucket
(``xdp47_api.blobs_s3``); ingest only signs, which is local computation (no
request to the bucket). Needs the ``s3`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import obstore
from obstore.store import S3Store

from xdp47_common.settings import ControlSettings

__all__ = ["ArtifactLinks", "blob_key", "links_from_settings", "s3_store"]


def blob_key(sha256: str, prefix: str = "") -> str:
    """The object key of the blob with this SHA256 (64 lowercase hex)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a lowercase hex SHA256 digest")
    return f"{prefix}sha256/{sha256[:2]}/{sha256}"


def s3_store(settings: ControlSettings) -> S3Store:
    """The bucket client of ``XDP47_S3_*``; unset keys come from the AWS_*
    environment, web identity or the instance (obstore's own lookup)."""
    assert settings.s3_bucket is not None  # the settings refuse s3 without one
    config: dict[str, str] = {"region": settings.s3_region}
    if settings.s3_endpoint:
        # MinIO, Ceph and moto serve path-style; so do R2 and GCS.
        config["endpoint"] = settings.s3_endpoint.rstrip("/")
        config["virtual_hosted_style_request"] = "false"
    if settings.s3_access_key_id:
        config["access_key_id"] = settings.s3_access_key_id
    if settings.s3_secret_access_key is not None:
        config["secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
    allow_http = bool(settings.s3_endpoint and settings.s3_endpoint.startswith("http:"))
    return S3Store(
        settings.s3_bucket,
        config=config,  # type: ignore[arg-type]  # S3Config is a TypedDict of str
        client_options={"allow_http": allow_http},
    )


class ArtifactLinks:
    """The URL a device downloads a stored blob from.

    With ``cdn_url`` it is ``<cdn_url>/<key>``. Otherwise a presigned GET of
    ``ttl`` seconds, reused for ``ttl / 2`` per blob: the desired-state answer
    (and so its ETag) stays the same between polls, and a URL handed out still
    has at least half its life left. The SHA256 in the desired state, not the
    URL, decides what a device accepts, so a CDN or bucket that serves other
    bytes only makes the download fail.

    Args:
        store: the bucket client (``s3_store``).
        prefix: ``XDP47_S3_PREFIX``.
        ttl: presigned URL lifetime in seconds.
        cdn_url: the operator's CDN base URL, or ``None``.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        store: S3Store,
        *,
        prefix: str = "",
        ttl: float = 3600,
        cdn_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._ttl = ttl
        self._cdn = cdn_url.rstrip("/") if cdn_url else None
        self._clock = clock
        self._signed: dict[str, tuple[str, float]] = {}

    def url_for(self, sha256: str) -> str:
        key = blob_key(sha256, self._prefix)
        if self._cdn is not None:
            return f"{self._cdn}/{key}"
        now = self._clock()
        cached = self._signed.get(sha256)
        if cached is not None and cached[1] > now:
            return cached[0]
        if len(self._signed) > 10_000:  # artifacts are few; drop the stale ones
            self._signed = {k: v for k, v in self._signed.items() if v[1] > now}
        url = obstore.sign(self._store, "GET", key, timedelta(seconds=self._ttl))
        self._signed[sha256] = (url, now + self._ttl / 2)
        return url


def links_from_settings(settings: ControlSettings) -> ArtifactLinks | None:
    """The links of the configured store; ``None`` for the filesystem store,
    whose bytes the api serves at the artifact's own ``uri``."""
    if settings.blob_store != "s3":
        return None
    return ArtifactLinks(
        s3_store(settings),
        prefix=settings.s3_prefix,
        ttl=settings.s3_presign_ttl_s,
        cdn_url=settings.artifact_cdn_url,
    )
