"""Artifact routes: register a release, read the catalogue, delete one."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import artifacts
from xdp47_common.models import Artifact, ArtifactCreate, Scope
from xdp47_common.models.base import NUL_FREE_PATTERN

__all__ = ["router"]

router = APIRouter(prefix="/api/artifacts", tags=["artifacts"])


@router.get(
    "", response_model=list[Artifact], summary="List artifacts", responses=errors()
)
async def list_artifacts(
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.ARTIFACTS_READ)],
    services: ServicesDep,
    version: Annotated[
        str | None, Query(max_length=128, pattern=NUL_FREE_PATTERN)
    ] = None,
    type: Annotated[str | None, Query(max_length=64, pattern=NUL_FREE_PATTERN)] = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[Artifact]:
    page = await artifacts.list_page(
        services,
        principal.tenant,
        version=version,
        type_=type,
        limit=limit,
        cursor=cursor,
    )
    return publish_page(request, response, page)


@router.post(
    "",
    response_model=Artifact,
    status_code=201,
    summary="Register an artifact",
    responses=errors(404, 413),
)
async def create_artifact(
    body: ArtifactCreate,
    principal: Annotated[Principal, require(Scope.ARTIFACTS_WRITE)],
    services: ServicesDep,
) -> Artifact:
    return await artifacts.create(services, principal, body)


@router.get(
    "/{artifact_id}",
    response_model=Artifact,
    summary="Read an artifact",
    responses=errors(404),
)
async def get_artifact(
    artifact_id: UUID,
    principal: Annotated[Principal, require(Scope.ARTIFACTS_READ)],
    services: ServicesDep,
) -> Artifact:
    return await artifacts.get(services, principal.tenant, artifact_id)


@router.delete(
    "/{artifact_id}",
    status_code=204,
    summary="Delete an artifact (and its uploaded bytes when nothing shares them)",
    description="Scope artifacts:write. 409 while a draft or running rollout, or "
    "a device's kept desired state, names it. Otherwise the artifact is gone from "
    "the catalogue (finished rollouts keep naming it), and uploaded bytes no other "
    "artifact has are removed from the store.",
    responses=errors(404, 409),
)
async def remove_artifact(
    artifact_id: UUID,
    principal: Annotated[Principal, require(Scope.ARTIFACTS_WRITE)],
    services: ServicesDep,
) -> Response:
    await artifacts.delete(services, principal.tenant, artifact_id)
    return Response(status_code=204)
