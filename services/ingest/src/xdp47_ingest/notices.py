"""What a ``NOTIFY xdp47_desired`` payload says changed, for the identity cache.

- ``<tenant>`` (migration 0008's triggers, and every change not below): any of
  the tenant's answers may have changed;
- ``<tenant> <rollout> <after> <upto>`` (migration 0027): the rollout moved from
  wave ``after`` to ``upto`` (a draft's start from 0), which changes the
  answers of its targets in waves (after, upto] only;
- ``<tenant> <rollout> <after> <upto> late`` (the scheduler's late joiners,
  ``xdp47_scheduler.pg.late``): devices joined the running wave ``upto``, whose
  answers are the only ones that changed: the late targets of those waves.

A payload that does not parse as one of the narrower forms reads as the first.
Tenant ids hold no spaces (their CHECK).
"""

from __future__ import annotations

from typing import NamedTuple
from uuid import UUID

__all__ = ["WaveChange", "parse_notice"]


class WaveChange(NamedTuple):
    """The targets whose answers changed: ``rollout``'s in waves (after, upto],
    only its late ones when ``late_only``."""

    rollout: UUID
    after: int
    upto: int
    late_only: bool = False


def parse_notice(payload: str) -> tuple[str, WaveChange | None]:
    """The tenant, and the targets that changed when the payload narrows them
    (``None``: any of the tenant's answers may have)."""
    tenant, *rest = payload.split(" ")
    late_only = rest[-1:] == ["late"]
    if late_only:
        rest.pop()
    if len(rest) != 3:
        return tenant, None
    try:
        return tenant, WaveChange(UUID(rest[0]), int(rest[1]), int(rest[2]), late_only)
    except ValueError:
        return tenant, None
