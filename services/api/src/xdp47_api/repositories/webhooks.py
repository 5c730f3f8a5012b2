"""Webhook subscriptions and their deliveries, per tenant (migration 0021).

Deliveries are written by the webhook worker (``xdp47-webhooks``); the API reads
them and puts a parked one back to pending for a redelivery by hand.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg

from xdp47_api.pagination import Page, time_id_cursor
from xdp47_api.repositories._paging import page_of
from xdp47_common.models.webhook import Webhook, WebhookCreated, WebhookDeliveryRecord

__all__ = ["PgWebhookRepository"]

_COLUMNS = "id, tenant, url, events, description, created_by, created_at"
_DELIVERY_COLUMNS = (
    "id, webhook_id, event_id, event, rollout_id, status, attempts, redeliveries, "
    "last_status_code, last_error, created_at, last_attempt_at, next_attempt_at, "
    "delivered_at"
)

INSERT = f"""
INSERT INTO webhooks (id, tenant, url, events, description, secret, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {_COLUMNS}
"""  # nosec B608
GET = f"SELECT {_COLUMNS} FROM webhooks WHERE tenant = $1 AND id = $2"  # nosec B608
LIST = f"""
SELECT {_COLUMNS} FROM webhooks
WHERE tenant = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
ORDER BY created_at, id LIMIT $4
"""  # nosec B608
DELETE = "DELETE FROM webhooks WHERE tenant = $1 AND id = $2 RETURNING id"
# Newest first: what an operator looks for is the latest failures.
DELIVERIES = f"""
SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries
WHERE tenant = $1 AND webhook_id = $2
  AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
ORDER BY created_at DESC, id DESC LIMIT $6
"""  # nosec B608
GET_DELIVERY = f"""
SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries
WHERE tenant = $1 AND webhook_id = $2 AND id = $3
"""  # nosec B608
# A delivery in flight (pending) is not taken from its job; a delivered or
# parked one starts a fresh cycle of attempts.
REDELIVER = f"""
UPDATE webhook_deliveries
SET status = 'pending', attempts = 0, redeliveries = redeliveries + 1,
    next_attempt_at = now(), delivered_at = NULL
WHERE tenant = $1 AND webhook_id = $2 AND id = $3 AND status <> 'pending'
RETURNING {_DELIVERY_COLUMNS}
"""  # nosec B608


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook.model_validate(dict(row))


def _delivery(row: asyncpg.Record) -> WebhookDeliveryRecord:
    return WebhookDeliveryRecord.model_validate(dict(row))


def _delivery_key(d: WebhookDeliveryRecord) -> tuple[str, str]:
    return (d.created_at.isoformat(), str(d.id))


def _webhook_key(w: Webhook) -> tuple[str, str]:
    return (w.created_at.isoformat(), str(w.id))


class PgWebhookRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def create(
        self,
        tenant: str,
        url: str,
        events: list[str],
        description: str | None,
        secret: str,
        created_by: str,
    ) -> WebhookCreated:
        row = await self._pool.fetchrow(
            INSERT, uuid4(), tenant, url, events, description, secret, created_by
        )
        assert row is not None
        return WebhookCreated.model_validate({**dict(row), "secret": secret})

    async def get(self, tenant: str, webhook_id: UUID) -> Webhook | None:
        row = await self._pool.fetchrow(GET, tenant, webhook_id)
        return None if row is None else _webhook(row)

    async def list(
        self, tenant: str, *, limit: int, cursor: str | None
    ) -> Page[Webhook]:
        at, ident = time_id_cursor(cursor) or (None, None)
        rows = await self._pool.fetch(LIST, tenant, at, ident, limit + 1)
        return page_of([_webhook(r) for r in rows], limit, _webhook_key)

    async def delete(self, tenant: str, webhook_id: UUID) -> bool:
        return await self._pool.fetchval(DELETE, tenant, webhook_id) is not None

    async def deliveries(
        self,
        tenant: str,
        webhook_id: UUID,
        *,
        status: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[WebhookDeliveryRecord]:
        at, ident = time_id_cursor(cursor) or (None, None)
        rows = await self._pool.fetch(
            DELIVERIES, tenant, webhook_id, status, at, ident, limit + 1
        )
        return page_of([_delivery(r) for r in rows], limit, _delivery_key)

    async def delivery(
        self, tenant: str, webhook_id: UUID, delivery_id: UUID
    ) -> WebhookDeliveryRecord | None:
        row = await self._pool.fetchrow(GET_DELIVERY, tenant, webhook_id, delivery_id)
        return None if row is None else _delivery(row)

    async def redeliver(
        self, tenant: str, webhook_id: UUID, delivery_id: UUID
    ) -> WebhookDeliveryRecord | None:
        """Back to pending for a fresh cycle; None when missing or pending."""
        row = await self._pool.fetchrow(REDELIVER, tenant, webhook_id, delivery_id)
        return None if row is None else _delivery(row)
