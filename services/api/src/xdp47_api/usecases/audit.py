"""Audit trail use cases: read the caller's tenant's records, filtered, by pages.

Nothing here writes: entries are appended by the writes themselves (in their
transactions) and by the scheduler; no use case updates or deletes one.
"""

from __future__ import annotations

from datetime import datetime

from xdp47_api.pagination import Page
from xdp47_api.repositories.audit import AuditFilter
from xdp47_api.state import Services
from xdp47_api.usecases.errors import unprocessable
from xdp47_common.models.audit import AuditRecord

__all__ = ["AuditFilter", "list_page"]


async def list_page(
    services: Services,
    tenant: str,
    filt: AuditFilter,
    *,
    limit: int,
    cursor: str | None,
) -> Page[AuditRecord]:
    """A page of ``tenant``'s records (422 for an empty time range)."""
    _check_range(filt.since, filt.until)
    return await services.repos.audit.list(tenant, filt, limit=limit, cursor=cursor)


def _check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and until <= since:
        raise unprocessable("query.until: must be later than since")
