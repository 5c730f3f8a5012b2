"""``/ui/groups``: the tenant's device groups with their live counts, a form to
create one (a saved selector, or a list of device ids), and a group's members;
``/ui/selector-count``: the live count shown while a selector is typed. Reads
and writes call ``usecases.groups``, as the REST routes do."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from xdp47_api.state import ServicesDep
from xdp47_api.ui.forms import FormState, errors_from_validation, field
from xdp47_api.ui.pages._common import call_api, page_scope
from xdp47_api.ui.session import SessionDep, UiError, UiSession, WriteSessionDep
from xdp47_api.ui.templating import SECURITY_HEADERS, render, render_fragment
from xdp47_api.usecases import groups
from xdp47_common.models import Scope
from xdp47_common.models.group import DeviceGroup, DeviceGroupCreate
from xdp47_common.selectors import SelectorError, parse_selector

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
LIST_LIMIT = 200
MEMBERS_LIMIT = 200


@router.get("/ui/selector-count")
async def selector_count(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    label: Annotated[str | None, Query(max_length=4096)] = None,
    selector: Annotated[str | None, Query(max_length=4096)] = None,
    group_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The fragment under a selector field: how many devices it matches now
    (within the group when the form names one), or where the text is wrong
    (answered 200 so htmx swaps it in)."""
    page_scope(session, Scope.DEVICES_READ)
    text = selector if selector is not None else (label or "")
    ctx: dict[str, Any] = {"error": None, "count": None, "selector": "", "group": None}
    try:
        parsed = parse_selector(text)
        group = await _named_group(services, session.tenant, group_id)
    except (SelectorError, UiError) as exc:
        ctx["error"] = exc.message if isinstance(exc, UiError) else str(exc)
    else:
        ctx["selector"] = parsed.render()
        ctx["group"] = group
        ctx["count"] = await services.repos.device_counts.count(
            session.tenant, parsed.to_json(), group.id if group else None
        )
    html = render_fragment(request, "_selector_count.html", session, **ctx)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


async def _named_group(
    services: ServicesDep, tenant: str, group_id: str | None
) -> DeviceGroup | None:
    """The tenant's group a form names (none when empty)."""
    if not group_id:
        return None
    try:
        ident = UUID(group_id)
    except ValueError:
        raise UiError(422, f"group '{group_id}' is not a group id") from None
    group = await services.repos.groups.get(tenant, ident)
    if group is None:
        raise UiError(404, f"group '{group_id}' not found")
    return group


async def _page(
    request: Request,
    session: UiSession,
    services: ServicesDep,
    form: FormState | None = None,
) -> Response:
    form = form or FormState()
    page = await groups.list_page(
        services, session.tenant, limit=LIST_LIMIT, cursor=None
    )
    return render(
        request,
        "groups.html",
        session,
        status=form.status,
        groups=page.items,
        **form.context(),
    )


@router.get("/ui/groups")
async def groups_page(
    request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    page_scope(session, Scope.DEVICES_READ)
    return await _page(request, session, services)


@router.post("/ui/groups")
async def create(
    request: Request, session: WriteSessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.DEVICES_WRITE)
    form = await request.form()
    values = {n: field(form, n) for n in ("name", "kind", "selector", "devices")}
    fields: dict[str, Any] = {"tenant": session.tenant, "name": values["name"]}
    if values["kind"] == "static":
        fields["devices"] = values["devices"].replace(",", " ").split()
    else:
        fields["selector"] = values["selector"]
    try:
        body = DeviceGroupCreate.model_validate(fields)
    except ValidationError as exc:
        refused = FormState.refused(values, errors_from_validation(exc))
        return await _page(request, session, services, refused)
    group = await call_api(groups.create(services, session.principal, body))
    return RedirectResponse(f"/ui/groups/{group.id}", status_code=303)


@router.get("/ui/groups/{group_id}")
async def group_page(
    request: Request, group_id: UUID, session: SessionDep, services: ServicesDep
) -> Response:
    page_scope(session, Scope.DEVICES_READ)
    group, page = await call_api(
        groups.members(
            services, session.tenant, group_id, limit=MEMBERS_LIMIT, cursor=None
        )
    )
    return render(
        request,
        "group.html",
        session,
        group=group,
        devices=page.items,
        more=page.next_cursor is not None,
    )
