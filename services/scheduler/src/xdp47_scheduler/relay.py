"""The outbox relay: publish committed rollout events, with confirms, then mark them.

Every rollout event is written to the outbox in the transaction that decides it
(``runner``); this loop publishes what is unsent to ``xdp47.events`` and marks it
sent in the transaction that took the rows (``Outbox.relay``). It wakes at once
when a commit wrote rows (the in-process ``nudge``, and ``NOTIFY xdp47_outbox``
from any scheduler), and every ``XDP47_OUTBOX_SWEEP`` seconds regardless: the
safety net for a lost notification. Several schedulers relay at once; each takes
rows no other holds (``FOR UPDATE SKIP LOCKED``), so none is published twice
by two relays.

Delivery is at least once: a relay that dies after the broker confirmed and
before its transaction committed leaves the rows unsent, and the next relay
publishes them again with the same ``message_id``. Consumers deduplicate by it
(the envelope's ``message_id`` is the event id). Sent rows are pruned after
``XDP47_OUTBOX_RETENTION`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from xdp47_common.bus import Publisher, PublishFailed
from xdp47_common.messages.envelope import PreparedEnvelope
from xdp47_common.messages.rollout import RolloutEvent
from xdp47_common.topology import Topology
from xdp47_scheduler.advance import Clock
from xdp47_scheduler.metrics import EVENTS_PUBLISHED, OUTBOX_UNSENT
from xdp47_scheduler.ports import Outbox, OutboxRow

__all__ = ["OutboxRelay"]

log = logging.getLogger(__name__)

_EVENT_TYPE = RolloutEvent.model_fields["type"].default
_EVENT_VERSION = RolloutEvent.model_fields["version"].default
# Longest pause after a failed publish (the broker is away) before trying again.
_MAX_BACKOFF = 5.0


class OutboxRelay:
    """One relay loop per scheduler process (``run`` until ``stop``)."""

    def __init__(
        self,
        outbox: Outbox,
        publisher: Publisher,
        topology: Topology,
        *,
        clock: Clock,
        sweep: float,
        retention: float,
        batch: int = 100,
        before_sweep: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._outbox = outbox
        self._publisher = publisher
        self._topology = topology
        self._clock = clock
        self._sweep = sweep
        self._retention = timedelta(seconds=retention)
        self._batch = batch
        self.before_sweep = before_sweep
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._next_prune = clock()

    def nudge(self) -> None:
        """A commit wrote rows: relay them now (thread-unsafe, loop-local)."""
        self._wake.set()

    async def _send(self, row: OutboxRow) -> None:
        envelope = PreparedEnvelope(
            message_id=row.message_id,
            type=_EVENT_TYPE,
            version=_EVENT_VERSION,
            tenant=row.tenant,
            correlation_id=None,
            body=row.payload.encode(),
        )
        await self._publisher.publish(self._topology.events, row.routing_key, envelope)

    async def drain(self) -> int:
        """Relay until the outbox has nothing unsent this relay can take; how
        many were published.

        Raises:
            PublishFailed: the broker did not confirm (the rest stays unsent).
        """
        total = 0
        while True:
            try:
                sent = await self._outbox.relay(self._batch, self._send)
            except PublishFailed:
                EVENTS_PUBLISHED.labels("failed").inc()
                raise
            EVENTS_PUBLISHED.labels("published").inc(sent)
            total += sent
            if sent < self._batch:
                return total

    async def _housekeeping(self) -> None:
        now = self._clock()
        if now >= self._next_prune:
            self._next_prune = now + min(self._retention, timedelta(minutes=1))
            await self._outbox.prune(now - self._retention)
        OUTBOX_UNSENT.set(await self._outbox.unsent())

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if self.before_sweep is not None:
                    await self.before_sweep()
                await self.drain()
                await self._housekeeping()
                backoff = 0.1
                woken = self._wake
            except Exception as exc:
                # The broker or the database is away: the rows stay unsent and
                # the relay tries again after a pause (commits do not hurry it).
                log.warning("outbox relay: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=self._sweep)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
