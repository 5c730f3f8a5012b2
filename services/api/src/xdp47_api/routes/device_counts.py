"""``GET /api/devices:count``: how many devices a selector matches now (the live
count the UI shows while an operator types, and ``xdp47 devices ls``'s total),
optionally split by version, status, channel or a label's value."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query

from xdp47_api.auth import Principal, require
from xdp47_api.repositories.device_counts import COUNT_FIELDS
from xdp47_api.routes._responses import errors
from xdp47_api.state import ServicesDep
from xdp47_api.usecases.errors import not_found
from xdp47_common.models import Scope
from xdp47_common.models.group import DeviceCount
from xdp47_common.selectors import Selector, SelectorError, parse_selector

__all__ = ["COUNT_PATH", "count_devices", "parse_count_by", "router"]

COUNT_PATH = "/api/devices:count"
router = APIRouter(tags=["devices"])


def parse_count_by(by: str | None) -> tuple[str | None, str | None]:
    """``by`` as (field, label key): ``version`` -> ("version", None),
    ``label:model`` -> ("label", "model").

    Raises:
        HTTPException: 422 naming the accepted values.
    """
    if not by:
        return None, None
    if by in COUNT_FIELDS:
        return by, None
    kind, _, key = by.partition(":")
    if kind == "label" and key:
        try:
            Selector.from_json([{"key": key, "operator": "exists"}])
        except SelectorError as exc:
            raise HTTPException(status_code=422, detail=f"query.by: {exc}") from None
        return "label", key
    raise HTTPException(
        status_code=422,
        detail=f"query.by: {by!r}; one of {', '.join(COUNT_FIELDS)} or label:<key>",
    )


@router.get(
    COUNT_PATH,
    response_model=DeviceCount,
    summary="Count the devices a selector matches (optionally per value)",
    responses=errors(404),
)
async def count_devices(
    principal: Annotated[Principal, require(Scope.DEVICES_READ)],
    services: ServicesDep,
    selector: Annotated[
        str,
        Query(
            max_length=4096,
            description="Any selector form (docs/api.md#selectors); empty: all.",
        ),
    ] = "",
    group_id: Annotated[
        UUID | None, Query(description="Only members of this group.")
    ] = None,
    by: Annotated[
        str | None,
        Query(
            max_length=80,
            description="Split the count: version, status, channel or label:<key>.",
        ),
    ] = None,
) -> DeviceCount:
    try:
        parsed = parse_selector(selector)
    except SelectorError as exc:
        raise HTTPException(status_code=422, detail=f"query.selector: {exc}") from None
    field, key = parse_count_by(by)
    if group_id is not None and (
        await services.repos.groups.get(principal.tenant, group_id) is None
    ):
        raise not_found("group", group_id)
    counts = services.repos.device_counts
    selector_json = parsed.to_json()
    total = await counts.count(principal.tenant, selector_json, group_id)
    buckets = (
        []
        if field is None
        else await counts.buckets(principal.tenant, selector_json, field, key, group_id)
    )
    return DeviceCount(
        selector=parsed.render(), count=total, by=by or None, buckets=buckets
    )
