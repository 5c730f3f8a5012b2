"""The audit trail route: ``GET /api/audit`` (scope ``audit:read``), read only.

No route updates or deletes a record; the table refuses it too (migration 0020).
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime

from xdp47_api.auth import Principal, require
from xdp47_api.pagination import CursorParam, LimitParam, publish_page
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases import audit
from xdp47_common.models import Scope
from xdp47_common.models.audit import AuditRecord
from xdp47_common.models.base import NUL_FREE_PATTERN

__all__ = ["router"]

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get(
    "",
    response_model=list[AuditRecord],
    summary="List the audit trail of the caller's tenant",
    description="Every write (API, UI, CLI) and every scheduler decision, "
    "appended in the transaction of the change: who (`actor`: `token:<id>` with "
    "`actor_name`, or `scheduler` with `on_behalf_of` when it applies an "
    "operator's command), what (`action`), the subject, when (`at`), the "
    "request's `X-Request-ID`, the status before and after and the `outcome`. "
    "Newest first (`order=asc`: oldest first), in pages by `cursor` "
    "(`X-Next-Cursor`, `Link`); the order is stable (`seq`).",
    responses=errors(),
)
async def list_audit(
    request: Request,
    response: Response,
    principal: Annotated[Principal, require(Scope.AUDIT_READ)],
    services: ServicesDep,
    rollout: Annotated[
        UUID | None, Query(description="Records of this rollout only.")
    ] = None,
    actor: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NUL_FREE_PATTERN,
            description="`token:<id>`, a token's name or `scheduler`; matches "
            "who acted and whom a scheduler decision acted for.",
        ),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[a-z0-9_.]+(\.\*)?$",
            description="An action (`rollout.start`), or a prefix ending in "
            "`.*` (`token.*`).",
        ),
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="At or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Before this time.")
    ] = None,
    order: Literal["desc", "asc"] = "desc",
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> list[AuditRecord]:
    filt = audit.AuditFilter(
        rollout_id=rollout,
        actor=actor,
        action=action,
        since=since,
        until=until,
        order=order,
    )
    page = await audit.list_page(
        services, principal.tenant, filt, limit=limit, cursor=cursor
    )
    return publish_page(request, response, page)
