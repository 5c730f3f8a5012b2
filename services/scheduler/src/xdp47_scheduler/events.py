"""Rollout events: the scheduler's decisions on ``xdp47.events``, after commit.

Events are notifications; PostgreSQL holds the truth. A publish that fails is
logged and counted and the decision stands (no outbox: the issue does not ask for
one, and ``/api/rollouts/{id}/runs`` shows every decision). Each event has a
deterministic message id, so a consumer can drop the rare duplicate.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from xdp47_common.bus import Publisher, PublishFailed
from xdp47_common.messages import RolloutEvent
from xdp47_common.rollout import DecisionEvent, EventName
from xdp47_common.topology import Topology
from xdp47_scheduler.metrics import EVENTS_PUBLISHED

__all__ = ["BusEventSink", "EventSink", "event_messages"]

log = logging.getLogger(__name__)

_EVENT_NS = UUID("6f0c9b8e-4c1d-4a57-9d0e-47a1c2d3e4f5")

# Events an operator may cause several times in one wave: their message id also
# names the command that caused them.
_REPEATABLE = frozenset({EventName.PAUSED, EventName.RESUMED})


class EventSink(Protocol):
    async def publish(self, events: Sequence[RolloutEvent]) -> None: ...


def event_messages(
    tenant: str,
    rollout_id: UUID,
    attempt: int,
    events: Sequence[DecisionEvent],
    occurrence: UUID | None = None,
) -> list[RolloutEvent]:
    """Turn a decision's events into messages (``data.attempt`` says which try).

    ``occurrence``: the command that caused them (its message id), which tells
    apart the events that may happen more than once per wave (pause, resume).
    """
    out = []
    for e in events:
        # Each event happens at most once per (attempt, wave) of a rollout, but
        # for pause and resume, once per command.
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


class BusEventSink:
    """Publishes to ``topology.events`` with ``rollout.<tenant>.<event>`` keys."""

    def __init__(self, publisher: Publisher, topology: Topology) -> None:
        self._publisher = publisher
        self._topology = topology

    async def publish(self, events: Sequence[RolloutEvent]) -> None:
        for event in events:
            key = self._topology.rollout_event_key(event.tenant, event.event)
            try:
                await self._publisher.publish(self._topology.events, key, event)
            except PublishFailed as exc:
                EVENTS_PUBLISHED.labels("failed").inc()
                log.warning("event %s of %s lost: %s", key, event.rollout_id, exc)
            else:
                EVENTS_PUBLISHED.labels("published").inc()
