"""Settings of the webhook worker (``XDP47_WEBHOOK_*``) beside the shared ones."""

from __future__ import annotations

from pydantic import Field, field_validator

from xdp47_common.adapters.amqp_webhooks import MAX_RETRY_DELAYS
from xdp47_common.cli import parse_listen_addr
from xdp47_common.settings import ControlSettings

__all__ = ["WebhookSettings"]


class WebhookSettings(ControlSettings):
    webhook_retry_delays: str = Field(
        default="10,60,300,1800,7200",
        description="Seconds before each retry, comma separated, at most "
        f"{MAX_RETRY_DELAYS}; a delivery is parked after its first attempt and "
        "one retry per delay.",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds an attempt may take."
    )
    webhook_sweep: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between sweeps for deliveries whose job was lost.",
    )
    webhook_concurrency: int = Field(
        default=20, ge=1, le=1000, description="Attempts in flight per process."
    )
    webhook_http_addr: str | None = Field(
        default=None,
        description="host:port for /livez, /readyz and /metrics; off when unset.",
    )

    @field_validator("webhook_retry_delays")
    @classmethod
    def _check_delays(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",") if part.strip()]
        except ValueError as exc:
            raise ValueError("a comma-separated list of seconds") from exc
        if (
            not delays
            or len(delays) > MAX_RETRY_DELAYS
            or any(d <= 0 or d > 86_400 for d in delays)
        ):
            raise ValueError(
                f"between 1 and {MAX_RETRY_DELAYS} delays, each in (0, 86400] seconds"
            )
        return value

    @field_validator("webhook_http_addr")
    @classmethod
    def _check_http_addr(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen_addr(value, "XDP47_WEBHOOK_HTTP_ADDR")
        return value

    @property
    def delays_ms(self) -> list[int]:
        """The retry delays in milliseconds (the delay queues' TTLs)."""
        return [
            max(1, round(float(p) * 1000))
            for p in self.webhook_retry_delays.split(",")
            if p.strip()
        ]

    @property
    def max_attempts(self) -> int:
        return len(self.delays_ms) + 1

    @property
    def grace(self) -> float:
        """How long after its due time a job counts as lost."""
        return self.webhook_timeout + self.webhook_sweep
