"""When silence means something: offline judgement and wave deadlines in a backlog.

A device is offline when *ingest* has not heard from it for ``offline_after``, not
when the scheduler is behind. Every heartbeat carries ``received_at``, the time
ingest accepted it, and ``devices.last_seen`` stores that time. The scheduler keeps
a watermark, ``heard_until``: the time up to which it has committed every
heartbeat ingest accepted. It advances to

- the newest ``received_at`` of a committed batch (the queue is consumed in order,
  so every device still heartbeating has a heartbeat at most one interval older
  than it already committed), and
- the time of a probe that found the heartbeat queue with no ready message and
  the scheduler's own consumer holding none, confirmed by the next probe (a
  delivery in transit at the first probe has arrived by the second).

It starts at ``NOTHING_HEARD`` when the scheduler starts, so nothing is judged
from the state a restart finds before the queue has been read. Offline means
``last_seen < heard_until - offline_after``; a wave's deadline has passed when
``heard_until`` reached it (``machine.decide``). With several schedulers each
keeps its own watermark; a heartbeat held by another scheduler at that moment can
be missed by at most one batch, which the thresholds (seconds to minutes) absorb.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["NOTHING_HEARD", "advance_heard_until", "offline_cutoff"]

NOTHING_HEARD = datetime.min.replace(tzinfo=UTC)


def advance_heard_until(
    previous: datetime,
    *,
    now: datetime,
    newest_committed: datetime | None = None,
    drained_at: datetime | None = None,
) -> datetime:
    """Return the watermark after new evidence; it never moves back or past ``now``.

    Args:
        previous: The watermark so far (``NOTHING_HEARD`` at start).
        now: The current time.
        newest_committed: The newest ``received_at`` of a committed batch.
        drained_at: A confirmed probe time at which the queue was drained.

    Returns:
        The new watermark.
    """
    best = max(t for t in (previous, newest_committed, drained_at) if t is not None)
    return min(best, now) if best > previous else previous


def offline_cutoff(heard_until: datetime, offline_after: timedelta) -> datetime | None:
    """Devices last seen before the returned time are offline; None: judge nobody
    (nothing heard since the scheduler started)."""
    if heard_until == NOTHING_HEARD:
        return None
    return heard_until - offline_after
