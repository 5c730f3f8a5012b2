"""Rollout events: the scheduler's decisions, for ``xdp47.events`` via the outbox.

Events are notifications; PostgreSQL holds the truth. Each is written to the
outbox in the transaction that decides it and published by the relay
(``relay``) with publisher confirms, at least once. Each event has a
deterministic message id (the same decision gives the same id), which is the
event id consumers deduplicate by.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Protocol
from uuid import UUID

from xdp47_common.messages import RolloutEvent
from xdp47_common.rollout import DecisionEvent, EventName

__all__ = ["EventSink", "RelayNudge", "event_messages"]

_EVENT_NS = UUID("6f0c9b8e-4c1d-4a57-9d0e-47a1c2d3e4f5")

# Events an operator may cause several times in one wave: their message id also
# names the command that caused them.
# An analysis hold may come again after a resume: its id names the hold's start.
_REPEATABLE = frozenset({EventName.PAUSED, EventName.RESUMED, EventName.ANALYSIS_HELD})


class EventSink(Protocol):
    """Told of the events a transaction wrote to the outbox, once it committed
    (the relay's nudge; the engine's unit tests record them)."""

    async def publish(self, events: Sequence[RolloutEvent]) -> None: ...


class RelayNudge:
    """The production sink: wakes this process's relay after a commit."""

    def __init__(self, nudge: Callable[[], None]) -> None:
        self._nudge = nudge

    async def publish(self, events: Sequence[RolloutEvent]) -> None:
        if events:
            self._nudge()


def event_messages(
    tenant: str,
    rollout_id: UUID,
    attempt: int,
    events: Sequence[DecisionEvent],
    occurrence: UUID | str | None = None,
) -> list[RolloutEvent]:
    """Turn a decision's events into messages (``data.attempt`` says which try).

    ``occurrence``: the command that caused them (its message id), or the
    start of the hold they report, which tells apart the events that may happen
    more than once per wave (pause, resume, an analysis hold after a resume).
    """
    out = []
    for e in events:
        # Each event happens at most once per (attempt, wave) of a rollout, but
        # the repeatable ones once per command or hold.
        key = f"{rollout_id}:{attempt}:{e.wave}:{e.name.value}"
        if e.name in _REPEATABLE and occurrence is not None:
            key += f":{occurrence}"
        out.append(
            RolloutEvent(
                message_id=uuid.uuid5(_EVENT_NS, key),
                tenant=tenant,
                rollout_id=rollout_id,
                event=e.name.value,
                wave=e.wave,
                status=e.status.value if e.status else None,
                reason=e.reason,
                data={"attempt": attempt},
            )
        )
    return out
