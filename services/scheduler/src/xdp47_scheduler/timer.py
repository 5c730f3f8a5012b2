"""The timer (every ``XDP47_SCHED_INTERVAL``): offline marking, the gates and the
follow-up left of every running rollout, repair, and the status gauges.

A held rollout (paused, awaiting approval) is visited too: its gates answer a
no-op (``decide``), so neither its deadline nor its grace acts on it, while the
follow-up of a wave it started before the pause still tells that wave's devices.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from uuid import UUID

from xdp47_common.rollout import RolloutHold, RolloutStatus, offline_cutoff
from xdp47_scheduler.advance import Context
from xdp47_scheduler.followup import FollowUps
from xdp47_scheduler.metrics import ROLLOUTS, ROLLOUTS_HELD
from xdp47_scheduler.ports import RolloutStore

__all__ = ["OFFLINE_CHECKS", "Timer"]

log = logging.getLogger(__name__)

# How often per XDP47_SCHED_OFFLINE_AFTER the timer marks silent devices offline:
# a device is offline between offline_after and offline_after * (1 + 1/6) after
# its last heartbeat.
OFFLINE_CHECKS = 6

# Evaluate one rollout's gates, skipping it while another scheduler holds it.
Evaluate = Callable[[UUID], Awaitable[None]]


class Timer:
    """One tick of the timer at a time (the scheduler's timer task)."""

    def __init__(
        self,
        store: RolloutStore,
        ctx: Context,
        follow_ups: FollowUps,
        evaluate_unlocked: Evaluate,
        *,
        offline_after: float,
        late_join_interval: float = 30.0,
    ) -> None:
        self._store = store
        self._ctx = ctx
        self._follow_ups = follow_ups
        self._evaluate = evaluate_unlocked
        self._offline_after = timedelta(seconds=offline_after)
        # Marking offline scans the online devices (no index on last_seen, so
        # that a heartbeat's update stays HOT, migration 0009): a few times per
        # offline_after, not on every tick.
        self._offline_every = timedelta(seconds=offline_after / OFFLINE_CHECKS)
        self._next_offline_check: datetime | None = None
        self._late_join_every = timedelta(seconds=late_join_interval)
        self._next_late_join: datetime | None = None

    async def tick(self) -> None:
        now = self._ctx.clock()
        heard = self._ctx.heard
        await heard.probe(now)
        until = heard.value()
        cutoff = offline_cutoff(now if until is None else until, self._offline_after)
        due = self._next_offline_check is None or now >= self._next_offline_check
        if cutoff is not None and due:
            await self._store.mark_offline(cutoff)
            self._next_offline_check = now + self._offline_every
        # Windows first: a wave judged below reads the zones' openings.
        await self._store.refresh_windows(now)
        if self._next_late_join is None or now >= self._next_late_join:
            joined = await self._store.join_late()
            if joined:
                log.info("%d late joiners got a target", joined)
            self._next_late_join = now + self._late_join_every
        for rollout_id in await self._store.running():
            try:
                # Another scheduler evaluating it now has it covered.
                await self._evaluate(rollout_id)
                # Wave-start work a crash or a lost task left behind.
                await self._follow_ups.follow_if_due(rollout_id)
            except Exception:
                log.exception("gate evaluation of rollout %s failed", rollout_id)
        await self._store.reconcile()
        counts = await self._store.count_by_status()
        for status in RolloutStatus:
            ROLLOUTS.labels(status.value).set(counts.get(status.value, 0))
        held = await self._store.count_held()
        for hold in RolloutHold:
            ROLLOUTS_HELD.labels(hold.value).set(held.get(hold.value, 0))
