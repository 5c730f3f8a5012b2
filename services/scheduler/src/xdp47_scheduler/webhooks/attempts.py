"""One attempt of a webhook delivery, and what follows it.

A job names a delivery and the attempt it is for; ``claim`` lets one job per
attempt through (a repeated or stale job does nothing). The attempt resolves the
URL's host and refuses a private, loopback or link-local address unless
``XDP47_WEBHOOK_ALLOW_PRIVATE`` (checked on every attempt: DNS may have changed
since the subscription), then POSTs the event's JSON, signed, without following
redirects, within ``XDP47_WEBHOOK_TIMEOUT``. A 2xx answer delivers it. Anything
else is recorded as the last error (the status code, or the exception) and the
job goes to the delay queue of the next retry delay; after the last one the
delivery is parked until someone redelivers it by hand.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol
from uuid import UUID

import httpx

from xdp47_common.bus import Publisher, PublishFailed
from xdp47_common.messages import WebhookJob
from xdp47_common.topology import Topology
from xdp47_common.webhooks import (
    DestinationRefused,
    check_destination,
    signature_headers,
)
from xdp47_scheduler.pg.webhooks import Attempt
from xdp47_scheduler.webhooks.metrics import ATTEMPTS

__all__ = ["AttemptStore", "Attempts"]

log = logging.getLogger(__name__)


class AttemptStore(Protocol):
    async def claim(
        self, delivery_id: UUID, attempt: int, lease: float
    ) -> Attempt | None: ...

    async def delivered(self, a: Attempt, status_code: int) -> None: ...

    async def failed(
        self,
        a: Attempt,
        status_code: int | None,
        error: str,
        *,
        park: bool,
        due_in: float,
    ) -> None: ...


class Attempts:
    def __init__(
        self,
        store: AttemptStore,
        publisher: Publisher,
        topology: Topology,
        client: httpx.AsyncClient,
        *,
        delays_ms: list[int],
        timeout: float,
        grace: float,
        allow_private: bool,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._topology = topology
        self._client = client
        self._delays_ms = delays_ms
        self._timeout = timeout
        self._grace = grace
        self._allow_private = allow_private

    async def enqueue(self, delivery_id: UUID, attempt: int, tenant: str) -> None:
        """Publish a job for attempt ``attempt + 1`` now."""
        job = WebhookJob(tenant=tenant, delivery_id=delivery_id, attempt=attempt)
        await self._publisher.publish(
            self._topology.webhooks, Topology.WEBHOOK_DELIVERY_KEY, job
        )

    async def run(self, job: WebhookJob) -> None:
        a = await self._store.claim(
            job.delivery_id, job.attempt, self._timeout + self._grace
        )
        if a is None:
            ATTEMPTS.labels("stale").inc()
            return
        status, error = await self._send(a)
        if error is None and status is not None:
            await self._store.delivered(a, status)
            ATTEMPTS.labels("delivered").inc()
            return
        assert error is not None
        park = a.attempt > len(self._delays_ms)
        delay_ms = 0 if park else self._delays_ms[a.attempt - 1]
        await self._store.failed(
            a, status, error, park=park, due_in=delay_ms / 1000 + self._grace
        )
        if park:
            ATTEMPTS.labels("parked").inc()
            log.warning("webhook delivery %s parked: %s", a.delivery_id, error)
            return
        ATTEMPTS.labels("failed").inc()
        retry = WebhookJob(
            tenant=job.tenant, delivery_id=a.delivery_id, attempt=a.attempt
        )
        try:
            await self._publisher.publish(
                self._topology.webhooks, Topology.webhook_retry_key(delay_ms), retry
            )
        except PublishFailed as exc:
            # The sweep gives the delivery a job once it is due.
            log.warning("retry of %s not scheduled: %s", a.delivery_id, exc)

    async def _send(self, a: Attempt) -> tuple[int | None, str | None]:
        """(status code, error): error None when delivered."""
        try:
            await check_destination(a.url, allow_private=self._allow_private)
        except DestinationRefused as exc:
            return None, f"refused: {exc}"
        body = a.payload.encode()
        headers = signature_headers(
            a.secret,
            int(time.time()),
            body,
            str(a.event_id),
            a.event,
            str(a.delivery_id),
        )
        try:
            response = await self._client.post(
                a.url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.TimeoutException:
            return None, f"timeout after {self._timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{exc.__class__.__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"
