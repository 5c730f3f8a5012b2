"""Scheduler settings: the shared control settings plus its optional HTTP port."""

from __future__ import annotations

from pydantic import Field

from xdp47_common.settings import ControlSettings

__all__ = ["SchedulerSettings"]


class SchedulerSettings(ControlSettings):
    """What the scheduler reads besides the shared ``XDP47_*`` settings."""

    sched_http_addr: str | None = Field(
        default=None,
        pattern=r"^[^:\s]*:\d{1,5}$",
        description="host:port for /livez, /readyz and /metrics; off when unset.",
    )
    sched_command_batch: int = Field(
        default=20, ge=1, le=1000, description="Commands handled per batch."
    )
