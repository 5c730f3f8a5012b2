"""``/ui/audit``: the tenant's audit trail, newest first, filtered by rollout,
actor, action and time, in keyset pages (the use case of ``GET /api/audit``).
Read only: the page offers no change of a record, and no route makes one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from xdp47_api.state import ServicesDep
from xdp47_api.ui.pages._common import page_scope
from xdp47_api.ui.session import SessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import audit
from xdp47_common.models import Scope
from xdp47_common.models.audit import AuditRecord

__all__ = ["router"]

router = APIRouter(prefix="/ui/audit", include_in_schema=False)

PAGE_SIZE = 50
_ACTION = "abcdefghijklmnopqrstuvwxyz0123456789_."


def _time(value: str, name: str, errors: dict[str, str]) -> datetime | None:
    """A time from the form's ``datetime-local`` field (UTC) or ISO 8601."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors[name] = "expected a time like 2026-12-03T10:00"
        return None
    try:
        return audit.in_utc(
            parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC), name
        )
    except HTTPException:
        errors[name] = "out of range"
        return None


def _filter(
    rollout: str, actor: str, action: str, since: str, until: str
) -> tuple[audit.AuditFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    rollout_id = None
    if rollout:
        try:
            rollout_id = UUID(rollout)
        except ValueError:
            errors["rollout"] = "expected a rollout id"
    if "\x00" in actor:
        errors["actor"] = "must not contain NUL"
    prefix = action.removesuffix(".*")
    if action and (not prefix or any(c not in _ACTION for c in prefix)):
        errors["action"] = "expected an action like rollout.start, or rollout.*"
    start, end = _time(since, "since", errors), _time(until, "until", errors)
    if start and end and end <= start:
        errors["until"] = "must be later than since"
    filt = audit.AuditFilter(
        rollout_id=rollout_id,
        actor=(actor or None) if "actor" not in errors else None,
        action=action or None,
        since=start,
        until=end,
    )
    return filt, errors


@router.get("")
async def audit_page(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    rollout: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    page_scope(session, Scope.AUDIT_READ)
    filters = {
        "rollout": rollout,
        "actor": actor,
        "action": action,
        "since": since,
        "until": until,
    }
    filt, errors = _filter(rollout, actor, action, since, until)
    records: list[AuditRecord] = []
    next_cursor = None
    if not errors:
        try:
            page = await audit.list_page(
                services, session.tenant, filt, limit=PAGE_SIZE, cursor=cursor
            )
        except HTTPException as exc:  # only an invalid cursor raises here
            if exc.status_code != 422:
                raise
            errors["cursor"] = "this page link is no longer valid; start over"
        else:
            records, next_cursor = page.items, page.next_cursor
    base = {k: v for k, v in filters.items() if v}
    query = urlencode(base)
    ctx: dict[str, Any] = {
        "records": records,
        "filters": filters,
        "errors": errors,
        "first_url": "/ui/audit" + (f"?{query}" if query else ""),
        "next_url": None
        if next_cursor is None
        else "/ui/audit?" + urlencode({**base, "cursor": next_cursor}),
        "paged": cursor is not None,
    }
    return render(request, "audit.html", session, status=422 if errors else 200, **ctx)
