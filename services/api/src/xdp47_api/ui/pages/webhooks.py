"""``/ui/webhooks``: subscribe URLs to rollout events (the signing secret is shown
once, on the answer to the create), list them, and a webhook's deliveries with
their status and last error, with a button to redeliver a parked one."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.state import ServicesDep
from xdp47_api.ui.forms import FieldErrors, errors_from_validation, field
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiError, UiSession, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import webhooks
from xdp47_common.models import Scope
from xdp47_common.models.webhook import WebhookCreate, WebhookCreated
from xdp47_common.rollout.decision import EventName

__all__ = ["router"]

router = APIRouter(prefix="/ui/webhooks", include_in_schema=False)

LIST_LIMIT = 200
EVENT_NAMES = [e.value for e in EventName]


async def _page(
    request: Request,
    session: UiSession,
    services: ServicesDep,
    *,
    values: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    errors: FieldErrors | None = None,
    created: WebhookCreated | None = None,
    status: int = 200,
) -> Response:
    page = await webhooks.list_page(
        services, session.tenant, limit=LIST_LIMIT, cursor=None
    )
    return render(
        request,
        "webhooks.html",
        session,
        status=status,
        webhooks=page.items,
        more=page.next_cursor is not None,
        values=values or {},
        chosen=chosen or [],
        errors=errors or {},
        created=created,
        event_names=EVENT_NAMES,
    )


@router.get("")
async def webhooks_page(
    request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    page_scope(session, Scope.WEBHOOKS_READ)
    return await _page(request, session, services)


@router.post("")
async def create(
    request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.WEBHOOKS_WRITE)
    form = await request.form()
    values = {name: field(form, name) for name in ("url", "description")}
    chosen = [str(v) for v in form.getlist("events")]
    errors: FieldErrors = {}
    try:
        body = WebhookCreate.model_validate(
            {
                "url": values["url"],
                "events": chosen,
                "description": values["description"] or None,
            }
        )
    except ValidationError as exc:
        errors = errors_from_validation(exc)
    if errors:
        return await _page(
            request,
            session,
            services,
            values=values,
            chosen=chosen,
            errors=errors,
            status=422,
        )
    try:
        created = await call_api(webhooks.create(services, session.principal, body))
    except UiError as exc:
        if exc.status != 422:
            raise
        message = exc.message.removeprefix("body.url: ")
        return await _page(
            request,
            session,
            services,
            values=values,
            chosen=chosen,
            errors={"url": message},
            status=422,
        )
    # Rendered, not redirected: the secret is in this answer only.
    return await _page(request, session, services, created=created, status=201)


@router.post("/{webhook_id}/delete")
async def delete(
    webhook_id: UUID, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.WEBHOOKS_WRITE)
    await call_api(webhooks.delete(services, session.tenant, webhook_id))
    return RedirectResponse("/ui/webhooks", status_code=303)


@router.get("/{webhook_id}")
async def deliveries_page(
    webhook_id: UUID,
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    status: Annotated[str | None, Query()] = None,
    redelivered: Annotated[UUID | None, Query()] = None,
) -> Response:
    page_scope(session, Scope.WEBHOOKS_READ)
    wanted = status if status in ("pending", "delivered", "parked") else None
    hook = await call_api(webhooks.get(services, session.tenant, webhook_id))
    page = await webhooks.deliveries(
        services,
        session.tenant,
        webhook_id,
        status=wanted,
        limit=LIST_LIMIT,
        cursor=None,
    )
    return render(
        request,
        "webhook.html",
        session,
        webhook=hook,
        deliveries=page.items,
        more=page.next_cursor is not None,
        filter_status=wanted,
        redelivered=redelivered,
    )


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    webhook_id: UUID,
    delivery_id: UUID,
    session: WriteSessionDep,
    services: ServicesDep,
) -> Response:
    session.require(Scope.WEBHOOKS_WRITE)
    await call_api(
        webhooks.redeliver(services, session.tenant, webhook_id, delivery_id)
    )
    return RedirectResponse(
        f"/ui/webhooks/{webhook_id}?redelivered={delivery_id}", status_code=303
    )
