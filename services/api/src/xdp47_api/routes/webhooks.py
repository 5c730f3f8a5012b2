"""Webhook routes: subscriptions of a tenant's URLs to rollout events, and
their deliveries (``docs/api.md#webhooks``)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import webhooks
from xdp47_common.models import Scope
from xdp47_common.models.webhook import (
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryRecord,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.get(
    "", response_model=list[Webhook], summary="List webhooks", responses=errors()
)
async def list_webhooks(
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.WEBHOOKS_READ)],
    services: ServicesDep,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[Webhook]:
    page = await webhooks.list_page(
        services, principal.tenant, limit=limit, cursor=cursor
    )
    return publish_page(request, response, page)


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=201,
    summary="Subscribe a URL to rollout events (the secret is shown only here)",
    responses=errors(413),
)
async def create_webhook(
    body: WebhookCreate,
    principal: Annotated[Principal, require(Scope.WEBHOOKS_WRITE)],
    services: ServicesDep,
) -> WebhookCreated:
    return await webhooks.create(services, principal, body)


@router.get(
    "/{webhook_id}",
    response_model=Webhook,
    summary="Read a webhook",
    responses=errors(404),
)
async def get_webhook(
    webhook_id: UUID,
    principal: Annotated[Principal, require(Scope.WEBHOOKS_READ)],
    services: ServicesDep,
) -> Webhook:
    return await webhooks.get(services, principal.tenant, webhook_id)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook and its deliveries",
    responses=errors(404),
)
async def delete_webhook(
    webhook_id: UUID,
    principal: Annotated[Principal, require(Scope.WEBHOOKS_WRITE)],
    services: ServicesDep,
) -> Response:
    await webhooks.delete(services, principal.tenant, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=list[WebhookDeliveryRecord],
    summary="List a webhook's deliveries, newest first",
    responses=errors(404),
)
async def list_deliveries(
    webhook_id: UUID,
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.WEBHOOKS_READ)],
    services: ServicesDep,
    status: Annotated[Literal["pending", "delivered", "parked"] | None, Query()] = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[WebhookDeliveryRecord]:
    page = await webhooks.deliveries(
        services,
        principal.tenant,
        webhook_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return publish_page(request, response, page)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}:redeliver",
    response_model=WebhookDeliveryRecord,
    status_code=202,
    summary="Deliver a parked (or delivered) delivery again",
    responses=errors(404, 409),
)
async def redeliver(
    webhook_id: UUID,
    delivery_id: UUID,
    principal: Annotated[Principal, require(Scope.WEBHOOKS_WRITE)],
    services: ServicesDep,
) -> WebhookDeliveryRecord:
    return await webhooks.redeliver(services, principal.tenant, webhook_id, delivery_id)
