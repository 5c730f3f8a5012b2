"""``/ui/devices``: the fleet, filtered and paged on the server (keyset paging over
``usecases.devices.list_page``, so 10,000 devices cost one page), refreshed in place
by htmx polling."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from xdp47_api.state import ServicesDep
from xdp47_api.ui.fleet_chart import fleet_chart
from xdp47_api.ui.pages._common import is_htmx, page_scope
from xdp47_api.ui.session import SessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import devices as device_cases
from xdp47_api.usecases.devices import DeviceFilter
from xdp47_common.models import DeviceSort, DeviceStatus, Scope
from xdp47_common.selectors import parse_selector

__all__ = ["router"]

router = APIRouter(prefix="/ui/devices", include_in_schema=False)

PAGE_SIZE = 50
POLL_SECONDS = 5


@router.get("")
async def devices_page(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    label: Annotated[str, Query(max_length=500)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    version: Annotated[str, Query(max_length=128)] = "",
    q: Annotated[str, Query(max_length=128)] = "",
    sort: Annotated[str, Query(max_length=16)] = DeviceSort.ID.value,
    split: Annotated[str, Query(max_length=63)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=10, le=200)] = PAGE_SIZE,
) -> Response:
    page_scope(session, Scope.DEVICES_READ)
    errors: dict[str, str] = {}
    try:
        labels = parse_selector(label).to_json()
    except ValueError as exc:
        errors["label"] = str(exc)
        labels = {}
    try:
        order = DeviceSort(sort)
    except ValueError:
        errors["sort"] = f"unknown sort {sort!r}"
        order = DeviceSort.ID
    state: DeviceStatus | None = None
    if status:
        try:
            state = DeviceStatus(status)
        except ValueError:
            errors["status"] = f"unknown status {status!r}"
    filters = {
        "label": label,
        "status": status,
        "version": version,
        "q": q,
        "sort": sort,
        "split": split,
    }
    devices = []
    next_cursor = None
    if not errors:
        filt = DeviceFilter(
            labels=labels,
            status=state,
            version=version or None,
            id_prefix=q or None,
        )
        try:
            page = await device_cases.list_page(
                services, session.tenant, filt, limit=limit, cursor=cursor, sort=order
            )
        except HTTPException as exc:  # only an invalid cursor raises here
            if exc.status_code != 422:
                raise
            errors["cursor"] = "this page link is no longer valid; start over"
        else:
            devices, next_cursor = page.items, page.next_cursor
    base = {k: v for k, v in filters.items() if v}
    query = urlencode(base)
    refresh = urlencode({**base, **({"cursor": cursor} if cursor else {})})
    next_url = (
        None
        if next_cursor is None
        else "/ui/devices?" + urlencode({**base, "cursor": next_cursor})
    )
    chart = (
        await fleet_chart(services.repos.device_counts, session.tenant, labels, split)
        if "label" not in errors
        else None
    )
    ctx: dict[str, Any] = {
        "devices": devices,
        "count": None if chart is None else chart.total,
        "chart": chart,
        "sorts": [s.value for s in DeviceSort],
        "filters": filters,
        "errors": errors,
        "statuses": [s.value for s in DeviceStatus],
        "first_url": "/ui/devices" + (f"?{query}" if query else ""),
        "next_url": next_url,
        "paged": cursor is not None,
        "refresh_url": "/ui/devices" + (f"?{refresh}" if refresh else ""),
        "poll_seconds": POLL_SECONDS,
    }
    name = "_devices_table.html" if is_htmx(request) else "devices.html"
    return render(request, name, session, status=422 if errors else 200, **ctx)
