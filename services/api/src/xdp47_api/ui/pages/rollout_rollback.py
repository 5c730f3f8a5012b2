"""``/ui/rollouts/{id}/rollback``: the Roll back dialog (how many devices go back,
which policy) and its action. The action calls the same use case as
``POST /api/rollouts/{id}:rollback`` (``usecases.rollback``), so the 409s and
404s are the API's, shown on the error page."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.state import ServicesDep
from xdp47_api.ui.pages._common import call_api, find_rollout
from xdp47_api.ui.session import SessionDep, UiError, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import policies as policy_cases
from xdp47_api.usecases import rollback as rollback_cases
from xdp47_common.models import RollbackRequest, Scope

__all__ = ["router"]

router = APIRouter(prefix="/ui/rollouts", include_in_schema=False)


@router.get("/{rollout_id}/rollback")
async def rollback_dialog(
    rollout_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ROLLOUTS_WRITE)
    rollout = await find_rollout(services, session, rollout_id)
    affected = await rollback_cases.devices_to_send_back(
        services, session.tenant, rollout.id
    )
    policies: list[Any] = []
    if session.can(Scope.POLICIES_READ):
        policies = (
            await policy_cases.list_page(
                services, session.tenant, limit=1000, cursor=None
            )
        ).items
    return render(
        request,
        "_rollback_dialog.html",
        session,
        r=rollout,
        affected=affected,
        policies=policies,
    )


@router.post("/{rollout_id}/rollback")
async def rollback_action(
    rollout_id: UUID, request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ROLLOUTS_WRITE)
    form = await request.form()
    policy = str(form.get("policy") or "").strip() or None
    try:
        body = RollbackRequest(policy=policy)
    except ValidationError as exc:
        raise UiError(422, "policy: choose one of the tenant's policies") from exc
    answer = await call_api(
        rollback_cases.rollback(services, session.principal, rollout_id, body)
    )
    return RedirectResponse(f"/ui/rollouts/{answer.id}?sent=rollback", status_code=303)
