"""Policy routes: create and read the gate settings of rollouts."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Request, Response

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import policies
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
    page = await policies.list_page(
        services, principal.tenant, limit=limit, cursor=cursor
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
    return await policies.create(services, principal, body)


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
    return await policies.get(services, principal.tenant, policy_id)
