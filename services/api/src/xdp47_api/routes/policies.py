"""Policy routes: create and read the gate settings of rollouts."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.repositories import PgPolicyRepository
from xdp47_api.routes._responses import errors, not_found
from xdp47_api.state import ServicesDep
from xdp47_common.models import Policy, PolicyCreate, Scope

__all__ = ["router"]

router = APIRouter(prefix="/api/policies", tags=["policies"])


@router.get(
    "", response_model=list[Policy], summary="List policies", responses=errors()
)
async def list_policies(
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.POLICIES_READ)],
    services: ServicesDep,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[Policy]:
    page = await PgPolicyRepository(services.pool).list(
        principal.tenant, limit=limit, cursor=cursor
    )
    return publish_page(request, response, page)


@router.post(
    "",
    response_model=Policy,
    status_code=201,
    summary="Create a policy",
    responses=errors(404, 409, 413),
)
async def create_policy(
    body: PolicyCreate,
    principal: Annotated[Principal, require(Scope.POLICIES_WRITE)],
    services: ServicesDep,
) -> Policy:
    principal.own_tenant(body.tenant)
    created = await PgPolicyRepository(services.pool).create(body)
    if created is None:
        raise HTTPException(
            status_code=409,
            detail=f"name: a policy named '{body.name}' already exists in this tenant",
        )
    return created


@router.get(
    "/{policy_id}",
    response_model=Policy,
    summary="Read a policy",
    responses=errors(404),
)
async def get_policy(
    policy_id: UUID,
    principal: Annotated[Principal, require(Scope.POLICIES_READ)],
    services: ServicesDep,
) -> Policy:
    found = await PgPolicyRepository(services.pool).get(principal.tenant, policy_id)
    if found is None:
        raise not_found("policy", policy_id)
    return found
