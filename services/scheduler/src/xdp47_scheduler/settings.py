"""Scheduler settings: the shared control settings plus its optional HTTP port."""

from __future__ import annotations

from pydantic import Field, field_validator

from xdp47_common.cli import parse_listen_addr
from xdp47_common.settings import ControlSettings

__all__ = ["SchedulerSettings"]


class SchedulerSettings(ControlSettings):
    """What the scheduler reads besides the shared ``XDP47_*`` settings."""

    sched_http_addr: str | None = Field(
        default=None,
        description="host:port for /livez, /readyz and /metrics; off when unset.",
    )
    sched_command_batch: int = Field(
        default=20, ge=1, le=1000, description="Commands handled per batch."
    )
    outbox_sweep: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between the outbox relay's sweeps (it also wakes at "
        "once on every commit that wrote events).",
    )
    outbox_retention: float = Field(
        default=86_400.0,
        ge=0,
        description="Seconds a published event stays in the outbox before pruning.",
    )
    outbox_batch: int = Field(
        default=100, ge=1, le=10_000, description="Events per relay transaction."
    )

    @field_validator("sched_http_addr")
    @classmethod
    def _check_http_addr(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen_addr(value, "XDP47_SCHED_HTTP_ADDR")
        return value
