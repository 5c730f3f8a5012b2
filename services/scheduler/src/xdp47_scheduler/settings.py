"""Scheduler settings: the shared control settings plus its optional HTTP port."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from xdp47_common.cli import parse_listen_addr
from xdp47_common.settings import ControlSettings, Environment

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
    fault_redeliver_share: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="TEST ONLY (tests/faults): the share of deliveries the "
        "consumers nack back unprocessed, to prove redelivery is harmless. "
        "Refused with XDP47_ENV=production.",
    )

    @field_validator("sched_http_addr")
    @classmethod
    def _check_http_addr(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen_addr(value, "XDP47_SCHED_HTTP_ADDR")
        return value

    @model_validator(mode="after")
    def _refuse_faults_in_production(self) -> Self:
        if self.fault_redeliver_share and self.env is Environment.PRODUCTION:
            raise ValueError(
                "XDP47_FAULT_REDELIVER_SHARE is test-only fault injection and is "
                "refused with XDP47_ENV=production"
            )
        return self
