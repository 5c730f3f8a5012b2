"""The webhook worker's SQL: fan an event out into deliveries, claim an attempt,
record its outcome, and find deliveries whose job went missing (migration 0021).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_common.messages import RolloutEvent

__all__ = ["Attempt", "PgWebhookStore"]

_FAN_OUT = """
INSERT INTO webhook_deliveries
    (id, webhook_id, tenant, event_id, event, rollout_id, payload, next_attempt_at)
SELECT gen_random_uuid(), w.id, w.tenant, $2, $3, $4, $5,
       now() + make_interval(secs => $6)
FROM webhooks w
WHERE w.tenant = $1 AND (cardinality(w.events) = 0 OR $3 = ANY(w.events))
ON CONFLICT (webhook_id, event_id) DO NOTHING
"""
_FIRST_ATTEMPTS = """
SELECT id FROM webhook_deliveries
WHERE tenant = $1 AND event_id = $2 AND status = 'pending' AND attempts = 0
"""
_CLAIM = """
UPDATE webhook_deliveries AS d
SET attempts = d.attempts + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => $3)
FROM webhooks AS w
WHERE d.id = $1 AND d.status = 'pending' AND d.attempts = $2 AND w.id = d.webhook_id
RETURNING d.id, d.event_id, d.event, d.payload, d.attempts, w.url, w.secret
"""
_DELIVERED = """
UPDATE webhook_deliveries
SET status = 'delivered', delivered_at = now(), last_status_code = $3, last_error = NULL
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
_FAILED = """
UPDATE webhook_deliveries
SET status = CASE WHEN $5 THEN 'parked' ELSE 'pending' END,
    last_status_code = $3, last_error = $4,
    next_attempt_at = now() + make_interval(secs => $6)
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
_DUE = """
UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => $1)
WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING id, attempts, tenant
"""


@dataclass(frozen=True)
class Attempt:
    """A claimed attempt: what to send, where, signed with which secret."""

    delivery_id: UUID
    event_id: UUID
    event: str
    payload: str
    attempt: int  # this attempt's number (1 for the first)
    url: str
    secret: str


class PgWebhookStore:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def fan_out(self, event: RolloutEvent, grace: float) -> list[UUID]:
        """Create the event's deliveries (once per subscription, whatever the
        number of times the event arrives); the ones still waiting for their
        first attempt."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                _FAN_OUT,
                event.tenant,
                event.message_id,
                event.event,
                event.rollout_id,
                event.model_dump_json(),
                grace,
            )
            rows = await conn.fetch(_FIRST_ATTEMPTS, event.tenant, event.message_id)
        return [r["id"] for r in rows]

    async def claim(
        self, delivery_id: UUID, attempt: int, lease: float
    ) -> Attempt | None:
        """Take attempt ``attempt + 1`` of a pending delivery; None when another
        job took it, or the delivery is no longer pending."""
        r = await self._pool.fetchrow(_CLAIM, delivery_id, attempt, lease)
        if r is None:
            return None
        return Attempt(
            delivery_id=r["id"],
            event_id=r["event_id"],
            event=r["event"],
            payload=r["payload"],
            attempt=r["attempts"],
            url=r["url"],
            secret=r["secret"],
        )

    async def delivered(self, a: Attempt, status_code: int) -> None:
        await self._pool.execute(_DELIVERED, a.delivery_id, a.attempt, status_code)

    async def failed(
        self,
        a: Attempt,
        status_code: int | None,
        error: str,
        *,
        park: bool,
        due_in: float,
    ) -> None:
        await self._pool.execute(
            _FAILED, a.delivery_id, a.attempt, status_code, error[:1000], park, due_in
        )

    async def due(self, grace: float, limit: int = 500) -> list[tuple[UUID, int, str]]:
        """Pending deliveries past the time their job should have come: pushed
        ``grace`` ahead, for a new job each."""
        rows = await self._pool.fetch(_DUE, grace, limit)
        return [(r["id"], r["attempts"], r["tenant"]) for r in rows]
