"""Webhook use cases: subscribe a URL to rollout events, list, delete, inspect
deliveries and redeliver one by hand. Every id is checked against the tenant
(404 for another tenant's).

A URL is refused (422, with the reason) unless it is http(s) and its host
resolves only to public addresses, or ``XDP47_WEBHOOK_ALLOW_PRIVATE`` allows
private, loopback and link-local ones; the worker checks again before every
attempt.
"""

from __future__ import annotations

import logging
from uuid import UUID

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.state import Services
from xdp47_api.usecases.errors import conflict, not_found, unprocessable
from xdp47_common.bus import PublishFailed
from xdp47_common.messages import WebhookJob
from xdp47_common.models.webhook import (
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryRecord,
)
from xdp47_common.webhooks import DestinationRefused, check_destination, new_secret

__all__ = [
    "create",
    "delete",
    "deliveries",
    "get",
    "list_page",
    "redeliver",
]

log = logging.getLogger(__name__)


async def create(
    services: Services, principal: Principal, body: WebhookCreate
) -> WebhookCreated:
    try:
        await check_destination(
            body.url, allow_private=services.settings.webhook_allow_private
        )
    except DestinationRefused as exc:
        raise unprocessable(f"body.url: {exc}") from exc
    return await services.repos.webhooks.create(
        principal.tenant,
        body.url,
        body.events,
        body.description,
        new_secret(),
        principal.actor,
    )


async def list_page(
    services: Services, tenant: str, *, limit: int, cursor: str | None
) -> Page[Webhook]:
    return await services.repos.webhooks.list(tenant, limit=limit, cursor=cursor)


async def get(services: Services, tenant: str, webhook_id: UUID) -> Webhook:
    found = await services.repos.webhooks.get(tenant, webhook_id)
    if found is None:
        raise not_found("webhook", webhook_id)
    return found


async def delete(services: Services, tenant: str, webhook_id: UUID) -> None:
    """Delete the subscription and its deliveries (no more attempts)."""
    if not await services.repos.webhooks.delete(tenant, webhook_id):
        raise not_found("webhook", webhook_id)


async def deliveries(
    services: Services,
    tenant: str,
    webhook_id: UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[WebhookDeliveryRecord]:
    await get(services, tenant, webhook_id)
    return await services.repos.webhooks.deliveries(
        tenant, webhook_id, status=status, limit=limit, cursor=cursor
    )


async def redeliver(
    services: Services, tenant: str, webhook_id: UUID, delivery_id: UUID
) -> WebhookDeliveryRecord:
    """Start a fresh cycle of attempts for a delivered or parked delivery (409
    while it is pending: its attempts are under way)."""
    await get(services, tenant, webhook_id)
    done = await services.repos.webhooks.redeliver(tenant, webhook_id, delivery_id)
    if done is None:
        found = await services.repos.webhooks.delivery(tenant, webhook_id, delivery_id)
        if found is None:
            raise not_found("delivery", delivery_id)
        raise conflict(
            f"delivery '{delivery_id}' is pending: its attempts are under way"
        )
    job = WebhookJob(tenant=tenant, delivery_id=delivery_id, attempt=0)
    try:
        await services.publisher.publish(
            services.topology.webhooks, services.topology.WEBHOOK_DELIVERY_KEY, job
        )
    except PublishFailed as exc:
        # Due now: the worker's sweep gives it a job.
        log.warning("redelivery job of %s not published: %s", delivery_id, exc)
    return done
