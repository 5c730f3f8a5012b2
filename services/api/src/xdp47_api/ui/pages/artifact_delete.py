"""``/ui/artifacts/{id}/delete``: confirm, then delete an artifact.

The GET page names the artifact and what deleting it does; only its form's POST
deletes, through the REST route's own code (``delete_artifact``), so the UI
refuses exactly what the API refuses (409 while a rollout or a device still needs
it, shown on the same page)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from xdp47_api.artifact_deletion import ArtifactInUse, delete_artifact
from xdp47_api.repositories import PgArtifactRepository
from xdp47_api.state import ServicesDep
from xdp47_api.ui.pages._common import call_api
from xdp47_api.ui.session import SessionDep, UiError, WriteSessionDep
from xdp47_api.ui.templating import render
from xdp47_common.models import Scope

__all__ = ["router"]

router = APIRouter(prefix="/ui/artifacts", include_in_schema=False)


@router.get("/{artifact_id}/delete")
async def confirm_page(
    artifact_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ARTIFACTS_WRITE)
    artifact = await call_api(
        PgArtifactRepository(services.pool).get(session.tenant, artifact_id)
    )
    if artifact is None:
        raise UiError(404, f"artifact '{artifact_id}' not found")
    return render(
        request, "artifact_delete.html", session, artifact=artifact, refused=None
    )


@router.post("/{artifact_id}/delete")
async def delete(
    artifact_id: UUID, request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ARTIFACTS_WRITE)
    repository = PgArtifactRepository(services.pool)
    artifact = await call_api(repository.get(session.tenant, artifact_id))
    if artifact is None:
        raise UiError(404, f"artifact '{artifact_id}' not found")
    try:
        await delete_artifact(
            services.pool, services.blobs, session.tenant, artifact_id
        )
    except ArtifactInUse as exc:
        return render(
            request,
            "artifact_delete.html",
            session,
            status=409,
            artifact=artifact,
            refused=str(exc),
        )
    return RedirectResponse(f"/ui/artifacts?deleted={artifact_id}", status_code=303)
