"""The scheduler process as an object: ``Scheduler(settings).start()`` / ``stop()``.

Wires the adapters (``bootstrap``): an asyncpg pool and the rollout store on it
(``pg.PgRolloutStore``), the bus (by default an ``AmqpBus`` on ``XDP47_AMQP_URL``
with the topology declared; or one the caller passes and owns, like the embedded
demo's ``InMemoryBus``), the engine over the store (its handlers, gates,
follow-ups and timer: ``engine``), and four concurrent loops: the heartbeat
consumer (the engine's hooks), the command consumer, the timer (every
``XDP47_SCHED_INTERVAL``) and the outbox relay (``relay``: woken by the engine's
commits and by ``NOTIFY xdp47_outbox``, swept every ``XDP47_OUTBOX_SWEEP``).
Tests run it in-process; ``main`` runs it until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from xdp47_common import tracing
from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.adapters.pg import create_pool
from xdp47_common.bus import Bus
from xdp47_common.clock import utcnow
from xdp47_common.rollout.policy import default_policy
from xdp47_common.topology import Topology
from xdp47_scheduler.commands import CommandConsumer
from xdp47_scheduler.consumer import HeartbeatConsumer
from xdp47_scheduler.engine import Clock, RolloutEngine
from xdp47_scheduler.events import RelayNudge
from xdp47_scheduler.http import ProbeServer
from xdp47_scheduler.pg import PgRolloutStore, Pool
from xdp47_scheduler.pg.gauges import AlertGauges
from xdp47_scheduler.pg.outbox import OutboxListener, PgOutbox
from xdp47_scheduler.relay import OutboxRelay
from xdp47_scheduler.settings import SchedulerSettings

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    """One scheduler instance; several may run against the same database."""

    def __init__(
        self,
        settings: SchedulerSettings,
        *,
        clock: Clock = utcnow,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self._owns_bus = bus is None
        self.bus: Bus = bus or AmqpBus(
            settings.amqp_url,
            Topology(settings.amqp_namespace),
            publish_timeout=settings.publish_timeout,
        )
        self.topology = self.bus.topology
        self._clock = clock
        self._pool: Pool[Any] | None = None
        self._bus_started = False
        self._heartbeats: HeartbeatConsumer | None = None
        self._commands: CommandConsumer | None = None
        self._timer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._probe: ProbeServer | None = None
        self.engine: RolloutEngine | None = None
        self._gauges: AlertGauges | None = None
        self.relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._listener: OutboxListener | None = None

    @property
    def probe_port(self) -> int | None:
        return self._probe.port if self._probe is not None else None

    async def start(self) -> None:
        s = self.settings
        # No reset query on release (see ``create_pool``): the scheduler's
        # statements keep no session state (the one setting they make is
        # transaction-local, ``set_config(..., true)``; the outbox's LISTEN has
        # a connection of its own), and an open transaction is still rolled
        # back. Every heartbeat batch and each of a tick's statements takes a
        # connection: one round trip less for each.
        self._pool = await create_pool(
            s.db_url, min_size=s.db_pool_min, max_size=s.db_pool_max, reset=False
        )
        await self.bus.start()
        self._bus_started = True
        self.relay = relay = OutboxRelay(
            PgOutbox(self._pool),
            self.bus,
            self.topology,
            clock=self._clock,
            sweep=s.outbox_sweep,
            retention=s.outbox_retention,
            batch=s.outbox_batch,
        )
        self._listener = OutboxListener(s.db_url, relay.nudge)
        relay.before_sweep = self._listener.ensure
        self._relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        self.engine = engine = RolloutEngine(
            PgRolloutStore(self._pool),
            default_policy(s),
            RelayNudge(relay.nudge),
            clock=self._clock,
            offline_after=s.sched_offline_after,
            drained=self._heartbeats_drained,
            late_join_interval=s.sched_late_join_interval,
        )
        self._heartbeats = HeartbeatConsumer(
            self._pool,
            self.bus,
            self.topology,
            batch_size=s.sched_batch_size,
            batch_bytes=s.sched_batch_bytes,
            prefetch=s.sched_prefetch,
            after_write=engine.after_write,
            after_commit=engine.after_commit,
        )
        self._commands = CommandConsumer(
            engine,
            self.bus,
            self.topology,
            batch_size=s.sched_command_batch,
        )
        await self._heartbeats.start()
        await self._commands.start()
        self._gauges = AlertGauges(
            self._pool,
            self.bus,
            self.topology,
            default_deadline=s.sched_wave_deadline,
        )
        self._timer = asyncio.create_task(self._tick_loop(), name="scheduler-timer")
        if s.sched_http_addr:
            self._probe = ProbeServer(s.sched_http_addr, self.ready)
            await self._probe.start()
        log.info("scheduler started (namespace %r)", self.topology.namespace)

    async def _heartbeats_drained(self) -> bool:
        """Whether every heartbeat queued so far is committed or in hand: no
        ready message in the queue, and none held by this consumer (checked
        before and after the broker's answer, so a delivery arriving meanwhile
        counts as held)."""
        consumer = self._heartbeats
        if consumer is None or not consumer.idle:
            return False
        depth = await self.bus.queue_depth(self.topology.heartbeats_queue)
        return depth.messages == 0 and consumer.idle

    async def _tick_loop(self) -> None:
        assert self.engine is not None
        assert self._gauges is not None
        while not self._stopping.is_set():
            try:
                # One trace per tick (when sampled) instead of a root per query.
                with tracing.span("scheduler tick"):
                    await self.engine.tick()
                    await self._gauges.refresh()
            except Exception:
                log.exception("scheduler tick failed")
            # Sleep until the next tick, or until stop() asks us to end.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self.settings.sched_interval
                )

    async def ready(self) -> bool:
        """Readiness: the database answers and the broker connection is up."""
        if self._pool is None or not self._bus_started:
            return False
        await self._pool.fetchval("SELECT 1")
        return self.bus.is_ready

    async def stop(self) -> None:
        """Stop consuming, let the current tick finish, close everything."""
        self._stopping.set()
        for consumer in (self._commands, self._heartbeats):
            if consumer is not None:
                await consumer.stop()
        if self._timer is not None:
            try:
                await asyncio.wait_for(self._timer, timeout=30)
            except TimeoutError:
                log.warning("timer did not finish in time; cancelled")
        if self.engine is not None:
            # Wave-start follow-ups in flight finish (the timer would redo them).
            await self.engine.drain()
        if self.relay is not None and self._relay_task is not None:
            # The relay's batch in flight finishes; what is left stays unsent
            # for the next scheduler.
            self.relay.stop()
            try:
                await asyncio.wait_for(self._relay_task, timeout=30)
            except TimeoutError:
                log.warning("outbox relay did not finish in time; cancelled")
        if self._listener is not None:
            await self._listener.close()
        if self._probe is not None:
            await self._probe.close()
        if self._owns_bus and self._bus_started:
            await self.bus.close()
        if self._pool is not None:
            await self._pool.close()
        log.info("scheduler stopped")
