"""How far the scheduler has read the heartbeat queue: the heard-until watermark.

The rule is ``xdp47_common.rollout.liveness``; this keeps its state for one
scheduler process. Committed batches move it to their newest ``received_at``;
the timer's probe (``DrainedProbe``: the queue has no ready message and this
process's consumer holds none) moves it to the previous probe's time once a
second drained probe confirms it. Offline marking and wave deadlines are judged
from it (``RolloutEngine``), so nothing is judged from state the queue is about to
change, e.g. in the first tick after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from xdp47_common.rollout import NOTHING_HEARD, advance_heard_until
from xdp47_scheduler.heartbeats import HeartbeatWriteResult
from xdp47_scheduler.metrics import HEARD_BEHIND

__all__ = ["DrainedProbe", "HeardUntil"]

log = logging.getLogger(__name__)

# True when the heartbeat queue has no ready message and this scheduler's
# consumer holds none.
DrainedProbe = Callable[[], Awaitable[bool]]


class HeardUntil:
    """The watermark of one scheduler; without a probe it counts as caught up
    (an engine fed directly, as in tests)."""

    def __init__(self, drained: DrainedProbe | None) -> None:
        self._drained = drained
        self._heard = NOTHING_HEARD
        self._candidate: datetime | None = None

    def value(self) -> datetime | None:
        """The watermark; None: caught up (judge against the clock)."""
        return None if self._drained is None else self._heard

    def committed(self, result: HeartbeatWriteResult, now: datetime) -> None:
        """A heartbeat batch committed: move to its newest ingest time."""
        if result.changed:
            self._heard = advance_heard_until(
                self._heard,
                now=now,
                newest_committed=max(d.last_seen for d in result.changed),
            )

    async def probe(self, now: datetime) -> None:
        """The timer's probe of the queue; refreshes the lag gauge."""
        if self._drained is None:
            HEARD_BEHIND.set(0)
            return
        try:
            drained = await self._drained()
        except Exception:
            log.exception("heartbeat queue probe failed")
            drained = False
        if not drained:
            self._candidate = None
        else:
            if self._candidate is not None:
                self._heard = advance_heard_until(
                    self._heard, now=now, drained_at=self._candidate
                )
            self._candidate = now
        behind = -1.0 if self._heard == NOTHING_HEARD else (now - self._heard)
        HEARD_BEHIND.set(
            behind if isinstance(behind, float) else behind.total_seconds()
        )
