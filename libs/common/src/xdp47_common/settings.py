"""Control-plane settings, read once from ``XDP47_*`` environment variables.

Every field is documented in ``docs/configuration.md``; the names are the seed's.
Services build one ``ControlSettings`` in their bootstrap and pass plain values down:
the pure core never sees settings. Needs the ``settings`` extra.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xdp47_common.cli import parse_listen_addr

__all__ = ["DEV_TOKEN_PLACEHOLDER", "ControlSettings", "Environment", "get_settings"]

DEV_TOKEN_PLACEHOLDER = "devtoken123"


class Environment(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


class ControlSettings(BaseSettings):
    """Settings shared by api, ingest and scheduler."""

    model_config = SettingsConfigDict(env_prefix="XDP47_", extra="ignore")

    env: Environment = Field(
        default=Environment.PRODUCTION,
        description="production or development. Development allows the dev token.",
    )
    db_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/xdp47",
        description="PostgreSQL DSN.",
    )
    db_pool_min: Annotated[int, Field(ge=0)] = Field(default=1)
    db_pool_max: Annotated[int, Field(ge=1)] = Field(default=10)
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL."
    )
    amqp_namespace: str = Field(
        default="",
        pattern=r"^[a-z0-9_-]*$",
        description="Prefix for every exchange and queue name; empty in production, "
        "set by tests to isolate runs on one broker.",
    )
    listen_addr: str = Field(
        default="127.0.0.1:8080", description="host:port the HTTP server binds."
    )
    dev_token_enabled: bool = Field(
        default=False,
        description="Accept the dev token (XDP47_AGENT_TOKEN) with every scope for "
        "tenant XDP47_DEV_TENANT. Refused unless XDP47_ENV=development.",
    )
    agent_token: SecretStr = Field(
        default=SecretStr(DEV_TOKEN_PLACEHOLDER),
        description="The development token, accepted only with dev_token_enabled.",
    )
    dev_tenant: str = Field(default="default", description="Tenant of the dev token.")
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks deliver to private, loopback and link-local "
        "addresses (after DNS resolution); refused by default (SSRF).",
    )
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=1 << 20, description="Request bodies above this size get 413."
    )
    max_upload_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=512 << 20,
        description="Limit of an artifact upload (api), instead of max_body_bytes.",
    )
    blob_dir: str = Field(
        default="./var/blobs",
        description="Directory of uploaded artifact content (api); replicas share it.",
    )
    blob_store: Literal["fs", "s3"] = Field(
        default="fs",
        description="Where uploaded artifact bytes live: fs (XDP47_BLOB_DIR, the "
        "embedded default) or s3 (an S3-compatible bucket, XDP47_S3_*).",
    )
    s3_bucket: str | None = Field(
        default=None, description="Bucket of uploaded artifacts (blob_store=s3)."
    )
    s3_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+/?$",
        description="S3 API endpoint for MinIO, Ceph, R2, GCS…; unset: AWS. Path-"
        "style requests; http:// is allowed only here.",
    )
    s3_region: str = Field(default="us-east-1", description="The bucket's region.")
    s3_access_key_id: str | None = Field(
        default=None,
        description="Access key; unset: the AWS_* environment, web identity or "
        "instance credentials.",
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="Secret key of XDP47_S3_ACCESS_KEY_ID."
    )
    s3_prefix: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9._-]+/)*$",
        description="Key prefix inside the bucket (empty, or ending in /).",
    )
    s3_part_size: Annotated[int, Field(ge=5 << 20, le=512 << 20)] = Field(
        default=8 << 20,
        description="Multipart upload part size in bytes; an upload holds at most "
        "part size x XDP47_S3_UPLOAD_CONCURRENCY in memory.",
    )
    s3_upload_concurrency: Annotated[int, Field(ge=1, le=16)] = Field(
        default=2, description="Parts of one upload sent at the same time."
    )
    s3_presign_ttl_s: Annotated[int, Field(ge=120, le=604_800)] = Field(
        default=3600,
        description="Lifetime of the presigned download URLs that ingest gives "
        "devices (blob_store=s3); one URL per artifact is reused for half of it.",
    )
    artifact_cdn_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^?#]+$",
        description="Base URL of a CDN in front of the bucket: devices get "
        "<base>/<key> instead of a presigned URL (blob_store=s3).",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="Base URL devices reach the api at, for the URIs of uploaded "
        "artifacts; derived from each upload request when unset.",
    )
    ingest_public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="Base URL devices reach ingest at, sent with every claim answer "
        "so an agent knows where to heartbeat (api). Unset: agents heartbeat to "
        "their XDP47_CONTROL_URL, which suits a gateway routing both.",
    )
    ingest_metrics_urls: str = Field(
        default="",
        description="Comma-separated /metrics URLs of every ingest replica, for "
        "the UI System page's heartbeat rate (api); unset: "
        "XDP47_INGEST_PUBLIC_URL + /metrics when that is set.",
    )
    scheduler_metrics_urls: str = Field(
        default="",
        description="Comma-separated /metrics URLs of the scheduler replicas, for "
        "the UI System page's scheduler lag (api).",
    )
    publish_timeout: Annotated[float, Field(gt=0)] = Field(
        default=5.0,
        description="Seconds to wait for a broker confirm before answering 503.",
    )
    rate_limit: str = Field(
        default="100/second",
        description="Requests per API token (api): e.g. 100/second or "
        "100/second;3000/minute; off or 0 disables. Over it: 429 with Retry-After.",
    )
    device_rate_limit: str = Field(
        default="100/second",
        description="Requests per device credential (ingest, artifact download); "
        "off or 0 disables.",
    )
    otel: bool = Field(
        default=False,
        description="Let FastAPI's native OpenTelemetry instrumentation trace and "
        "measure HTTP requests through the process's global providers (api, "
        "ingest). Off, FastAPI skips it; on, it checks for providers on every "
        "request even when none is configured (~10 µs each).",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="limits storage URI for the counters: memory:// is per process "
        "(N replicas allow N times the limit); redis://… shares them.",
    )
    sched_interval: Annotated[float, Field(gt=0)] = Field(
        default=2.0, description="Seconds between gate evaluations on the timer."
    )
    sched_late_join_interval: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="Seconds between the timer's looks for late joiners of "
        "running rollouts (each look ranks the rollout's candidates once).",
    )
    sched_grace: Annotated[float, Field(ge=0)] = Field(
        default=0.0, description="Default grace_seconds after a wave starts."
    )
    sched_require_ok: bool = Field(
        default=True, description="Default require_ok: count only healthy devices."
    )
    sched_skip_offline: bool = Field(
        default=True, description="Default skip_offline at wave start."
    )
    sched_min_success_ratio: Annotated[float, Field(ge=0, le=1)] = Field(default=1.0)
    sched_max_failures_per_wave: Annotated[int, Field(ge=0)] = Field(default=0)
    sched_abort_on_zero_eligible: bool = Field(
        default=True,
        description="Default abort_on_zero_eligible: a start with no eligible "
        "device, or a wave that lost all its devices, ends the rollout aborted.",
    )
    sched_wave_deadline: Annotated[float, Field(gt=0)] = Field(
        default=900.0, description="Default per-wave deadline in seconds (timed_out)."
    )
    sched_max_device_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2,
        description="Default max_device_retries: more tries a device gets after a "
        "failed download, verification or apply before it counts as failed.",
    )
    sched_retry_backoff: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=30.0,
        description="Default retry_backoff_seconds: the wait before a device's "
        "first retry, doubled for each further one.",
    )
    sched_retry_backoff_max: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=300.0,
        description="Default retry_backoff_max_seconds: the longest wait between "
        "a device's tries.",
    )
    sched_offline_after: Annotated[float, Field(gt=0)] = Field(
        default=90.0, description="Seconds of silence after which a device is offline."
    )
    sched_batch_size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=500,
        description="Most heartbeat messages (a single heartbeat or one of "
        "ingest's batches) written per database transaction.",
    )
    sched_batch_bytes: Annotated[int, Field(ge=1024, le=256 << 20)] = Field(
        default=1 << 20,
        description="Most message bytes written per database transaction: what "
        "bounds the scheduler's memory, since one of ingest's batches (up to 256 "
        "heartbeats, ~100 kB) decodes to ~7 times its size.",
    )
    sched_prefetch: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=1000,
        description="AMQP prefetch of the heartbeat consumer, in messages.",
    )

    @field_validator("listen_addr")
    @classmethod
    def _check_listen_addr(cls, value: str) -> str:
        parse_listen_addr(value, "XDP47_LISTEN_ADDR")
        return value.strip()

    @field_validator("rate_limit", "device_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        text = value.strip().lower()
        if text in ("", "0", "off", "none", "false"):
            return "off"
        try:
            from limits import parse_many
        except ModuleNotFoundError:  # no web extra: this process serves no HTTP API
            return text
        try:
            parse_many(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit such as 100/second or "
                "100/second;3000/minute (or off)"
            ) from None
        return text

    @model_validator(mode="after")
    def _refuse_dev_token_in_production(self) -> Self:
        if self.env is Environment.PRODUCTION and self.dev_token_enabled:
            raise ValueError(
                "XDP47_DEV_TOKEN_ENABLED=true is refused with XDP47_ENV=production; "
                "set XDP47_ENV=development for a development setup"
            )
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Self:
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("XDP47_BLOB_STORE=s3 needs XDP47_S3_BUCKET")
        return self

    @property
    def listen_host(self) -> str:
        return parse_listen_addr(self.listen_addr, "XDP47_LISTEN_ADDR")[0] or "0.0.0.0"

    @property
    def listen_port(self) -> int:
        return parse_listen_addr(self.listen_addr, "XDP47_LISTEN_ADDR")[1]


@lru_cache(maxsize=1)
def get_settings() -> ControlSettings:
    """Build the settings once per process."""
    return ControlSettings()
