"""Gauges the shipped alerts watch, refreshed from the scheduler's timer.

The depth and consumers of each work queue and its dead-letter queue (a backlog
that grows, dead letters, nobody consuming), and the running rollouts whose
current wave is past its deadline (stuck). Refreshed at most every
``every`` seconds whatever the timer's interval: a queue's depth costs a channel
and a passive declare, and Prometheus scrapes every 15-60 s anyway.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg

from xdp47_common.bus import QueueInspector
from xdp47_common.topology import Topology
from xdp47_scheduler.metrics import PAST_DEADLINE, QUEUE_CONSUMERS, QUEUE_MESSAGES

__all__ = ["AlertGauges"]

log = logging.getLogger(__name__)

# The effective policy saved at start carries the deadline; $1 is the default
# for a rollout saved without one. A held rollout is not stuck: its deadline
# does not run while paused, and a wave awaiting approval has none.
_PAST_DEADLINE = """
SELECT count(*) FROM rollouts
WHERE status = 'running' AND hold IS NULL AND current_wave_started_at IS NOT NULL
  AND current_wave_started_at + make_interval(secs => coalesce(
        (effective_policy->>'wave_deadline_seconds')::float8, $1)) < now()
"""


class AlertGauges:
    def __init__(
        self,
        pool: asyncpg.Pool[Any],
        queues: QueueInspector,
        topology: Topology,
        *,
        default_deadline: float,
        every: float = 10.0,
    ) -> None:
        self._pool = pool
        self._queues = queues
        self._names = [
            name
            for queue in (topology.heartbeats_queue, topology.commands_queue)
            for name in (queue, topology.dead_queue(queue))
        ]
        self._default_deadline = default_deadline
        self._every = every
        self._next = 0.0

    async def refresh(self) -> None:
        """Refresh when due; a queue the broker cannot describe keeps its value."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._every
        for name in self._names:
            try:
                depth = await self._queues.queue_depth(name)
            except LookupError as exc:
                log.warning("queue %s not described: %s", name, exc)
                continue
            QUEUE_MESSAGES.labels(name).set(depth.messages)
            QUEUE_CONSUMERS.labels(name).set(depth.consumers)
        PAST_DEADLINE.set(
            await self._pool.fetchval(_PAST_DEADLINE, self._default_deadline)
        )
