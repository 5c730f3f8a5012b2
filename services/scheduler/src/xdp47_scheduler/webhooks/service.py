"""The webhook worker process as an object: ``WebhookWorker(settings).start()``.

Wires an asyncpg pool (``pg.webhooks``), the bus (``AmqpBus``, with the worker's
queues declared: ``xdp47_common.adapters.amqp_webhooks``), one httpx client, and
three loops:

- the fan-out consumer of ``webhooks.events``: each rollout event becomes one
  delivery per matching subscription of its tenant (keyed by subscription and
  event id, so an event published twice is delivered once), and a job for each
  first attempt;
- the delivery consumer of ``webhooks.deliveries``: the attempts (``attempts``),
  up to ``XDP47_WEBHOOK_CONCURRENCY`` at once;
- the sweep (every ``XDP47_WEBHOOK_SWEEP``, at most ``RETRY_QUEUE_RENEW_S``): a
  job again for every pending delivery past its due time (a job lost to a crash,
  a failed publish, an expired delay queue, or a redelivery by hand whose publish
  failed); it also renews the lease (``x-expires``) of the delay queues.

Run as many workers as the deliveries need; they share the queues and the sweep
takes rows with ``SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from xdp47_common.adapters.amqp_bus import AmqpBus
from xdp47_common.adapters.amqp_webhooks import (
    RETRY_QUEUE_RENEW_S,
    declare_retry_queues,
    declare_webhook_queues,
)
from xdp47_common.adapters.pg import create_pool, is_transient_db_error
from xdp47_common.bus import ConsumerOptions, PublishFailed, WorkConsumer
from xdp47_common.messages import RolloutEvent, WebhookJob
from xdp47_common.topology import Topology
from xdp47_scheduler.http import ProbeServer
from xdp47_scheduler.pg import Pool
from xdp47_scheduler.pg.webhooks import PgWebhookStore
from xdp47_scheduler.webhooks.attempts import Attempts
from xdp47_scheduler.webhooks.metrics import FANNED_OUT
from xdp47_scheduler.webhooks.settings import WebhookSettings

__all__ = ["WebhookWorker"]

log = logging.getLogger(__name__)


class WebhookWorker:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.topology = Topology(settings.amqp_namespace)
        self.bus = AmqpBus(
            settings.amqp_url, self.topology, publish_timeout=settings.publish_timeout
        )
        self._pool: Pool[Any] | None = None
        self._client: httpx.AsyncClient | None = None
        self._consumers: list[WorkConsumer] = []
        self._sweep: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._probe: ProbeServer | None = None
        self._store: PgWebhookStore | None = None
        self._attempts: Attempts | None = None

    @property
    def probe_port(self) -> int | None:
        return self._probe.port if self._probe is not None else None

    async def start(self) -> None:
        s = self.settings
        self._pool = await create_pool(
            s.db_url, min_size=s.db_pool_min, max_size=s.db_pool_max
        )
        self._store = store = PgWebhookStore(self._pool)
        await self.bus.start()
        await declare_webhook_queues(self.bus.connection, self.topology, s.delays_ms)
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=s.webhook_timeout,
            limits=httpx.Limits(max_connections=s.webhook_concurrency),
        )
        self._attempts = Attempts(
            store,
            self.bus,
            self.topology,
            self._client,
            delays_ms=s.delays_ms,
            timeout=s.webhook_timeout,
            grace=s.grace,
            allow_private=s.webhook_allow_private,
        )
        self._consumers = [
            self.bus.batch_consumer(
                self.topology.webhook_events_queue,
                RolloutEvent.model_validate_json,
                self._fan_out,
                ConsumerOptions(
                    max_batch=50,
                    max_wait_ms=5,
                    prefetch=100,
                    is_transient=is_transient_db_error,
                ),
            ),
            self.bus.batch_consumer(
                self.topology.webhook_deliveries_queue,
                WebhookJob.model_validate_json,
                self._deliver,
                ConsumerOptions(
                    max_batch=s.webhook_concurrency,
                    max_wait_ms=5,
                    prefetch=s.webhook_concurrency,
                    is_transient=is_transient_db_error,
                ),
            ),
        ]
        for consumer in self._consumers:
            await consumer.start()
        self._sweep = asyncio.create_task(self._sweep_loop(), name="webhook-sweep")
        if s.webhook_http_addr:
            self._probe = ProbeServer(s.webhook_http_addr, self.ready)
            await self._probe.start()
        log.info("webhook worker started (namespace %r)", self.topology.namespace)

    async def _fan_out(self, events: list[RolloutEvent]) -> None:
        assert self._store is not None
        assert self._attempts is not None
        for event in events:
            first = await self._store.fan_out(event, self.settings.grace)
            FANNED_OUT.inc(len(first))
            for delivery_id in first:
                try:
                    await self._attempts.enqueue(delivery_id, 0, event.tenant)
                except PublishFailed as exc:
                    # The delivery is stored: the sweep gives it a job when due.
                    log.warning(
                        "delivery job of %s not published: %s", delivery_id, exc
                    )

    async def _deliver(self, jobs: list[WebhookJob]) -> None:
        assert self._attempts is not None
        results = await asyncio.gather(
            *(self._attempts.run(job) for job in jobs), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                # The batch goes back to the queue; claimed attempts are
                # dropped as stale and the sweep gives them a job when due.
                raise result

    async def sweep(self) -> int:
        """A job for every pending delivery past due; how many."""
        assert self._store is not None
        assert self._attempts is not None
        due = await self._store.due(self.settings.grace)
        for delivery_id, attempt, tenant in due:
            await self._attempts.enqueue(delivery_id, attempt, tenant)
        return len(due)

    async def _sweep_loop(self) -> None:
        every = min(self.settings.webhook_sweep, RETRY_QUEUE_RENEW_S)
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("webhook sweep failed")
            try:
                await declare_retry_queues(
                    self.bus.connection, self.topology, self.settings.delays_ms
                )
            except Exception:
                log.exception("renewing the delay queues failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=every)

    async def ready(self) -> bool:
        if self._pool is None:
            return False
        await self._pool.fetchval("SELECT 1")
        return self.bus.is_ready

    async def stop(self) -> None:
        self._stopping.set()
        for consumer in self._consumers:
            await consumer.stop()
        if self._sweep is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sweep, timeout=30)
        if self._probe is not None:
            await self._probe.close()
        await self.bus.close()
        if self._client is not None:
            await self._client.aclose()
        if self._pool is not None:
            await self._pool.close()
        log.info("webhook worker stopped")
