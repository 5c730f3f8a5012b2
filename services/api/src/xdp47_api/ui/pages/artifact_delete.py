"""``/ui/artifacts/{id}/delete``: confirm, then delete an artifact.

The GET page names the artifact and what deleting it does; only its form's POST
deletes, through the REST route's own use case (``usecases.artifacts.delete``), so
the UI refuses exactly what the API refuses (409 while a rollout or a device still
needs it, shown on the same page)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from xdp47_api.state import ServicesDep
from xdp47_api.ui.pages._common import call_api
from xdp47_api.ui.session import SessionDep, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import artifacts
from xdp47_common.models import Scope

__all__ = ["router"]

router = APIRouter(prefix="/ui/artifacts", include_in_schema=False)


@router.get("/{artifact_id}/delete")
async def confirm_page(
    artifact_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ARTIFACTS_WRITE)
    artifact = await call_api(artifacts.get(services, session.tenant, artifact_id))
    return render(
        request, "artifact_delete.html", session, artifact=artifact, refused=None
    )


@router.post("/{artifact_id}/delete")
async def delete(
    artifact_id: UUID, request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ARTIFACTS_WRITE)
    artifact = await call_api(artifacts.get(services, session.tenant, artifact_id))
    try:
        await artifacts.delete(services, session.tenant, artifact_id)
    except HTTPException as exc:
        if exc.status_code == 404:  # deleted meanwhile: what was asked
            return _deleted(artifact_id)
        if exc.status_code != 409:
            raise
        return render(
            request,
            "artifact_delete.html",
            session,
            status=409,
            artifact=artifact,
            refused=str(exc.detail),
        )
    return _deleted(artifact_id)


def _deleted(artifact_id: UUID) -> Response:
    return RedirectResponse(f"/ui/artifacts?deleted={artifact_id}", status_code=303)
