"""Artifact use cases: the catalogue, registering a release by URI, deleting one."""

from __future__ import annotations

from uuid import UUID

from xdp47_api.auth import Principal
from xdp47_api.pagination import Page
from xdp47_api.repositories.artifact_deletion import ArtifactInUse
from xdp47_api.state import Services
from xdp47_api.usecases.errors import conflict, not_found
from xdp47_common.models import Artifact, ArtifactCreate

__all__ = ["create", "delete", "find", "get", "get_stored", "list_page"]


async def list_page(
    services: Services,
    tenant: str,
    *,
    version: str | None = None,
    type_: str | None = None,
    limit: int,
    cursor: str | None,
) -> Page[Artifact]:
    return await services.repos.artifacts.list(
        tenant, version=version, type_=type_, limit=limit, cursor=cursor
    )


async def create(
    services: Services, principal: Principal, body: ArtifactCreate
) -> Artifact:
    """Register an artifact of the caller's tenant (404 for another tenant)."""
    principal.own_tenant(body.tenant)
    return await services.repos.artifacts.create(body)


async def find(services: Services, tenant: str, artifact_id: UUID) -> Artifact | None:
    """The tenant's artifact, ``None`` when there is none (a deleted one)."""
    return await services.repos.artifacts.get(tenant, artifact_id)


async def get(services: Services, tenant: str, artifact_id: UUID) -> Artifact:
    """The tenant's artifact, or 404."""
    found = await services.repos.artifacts.get(tenant, artifact_id)
    if found is None:
        raise not_found("artifact", artifact_id)
    return found


async def get_stored(
    services: Services, tenant: str, artifact_id: UUID
) -> tuple[Artifact, int]:
    """The tenant's uploaded artifact and the size of its stored bytes, or 404
    (``artifact content``) when it has none or they are gone."""
    artifact = await services.repos.artifacts.get_stored(tenant, artifact_id)
    size = None if artifact is None else await services.blobs.size(artifact.sha256)
    if artifact is None or size is None:
        raise not_found("artifact content", artifact_id)
    return artifact, size


async def delete(services: Services, tenant: str, artifact_id: UUID) -> None:
    """Delete the tenant's artifact: 409 while something needs it (the message
    says what), 404 when there is none."""
    try:
        found = await services.repos.delete_artifact(
            services.blobs, tenant, artifact_id
        )
    except ArtifactInUse as exc:
        raise conflict(str(exc)) from None
    if not found:
        raise not_found("artifact", artifact_id)
