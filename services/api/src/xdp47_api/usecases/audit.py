"""Audit trail use cases: read the caller's tenant's records, filtered, by pages.

Nothing here writes: entries are appended by the writes themselves (in their
transactions) and by the scheduler; no use case updates or deletes one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from xdp47_api.pagination import Page
from xdp47_api.repositories.audit import AuditFilter
from xdp47_api.state import Services
from xdp47_api.usecases.errors import unprocessable
from xdp47_common.models.audit import AuditRecord

__all__ = ["AuditFilter", "in_utc", "list_page"]


async def list_page(
    services: Services,
    tenant: str,
    filt: AuditFilter,
    *,
    limit: int,
    cursor: str | None,
) -> Page[AuditRecord]:
    """A page of ``tenant``'s records (422 for an empty or impossible time
    range, or an actor with NUL)."""
    if filt.actor is not None and "\x00" in filt.actor:
        raise unprocessable("query.actor: must not contain NUL (U+0000)")
    since = in_utc(filt.since, "since")
    until = in_utc(filt.until, "until")
    if since is not None and until is not None and until <= since:
        raise unprocessable("query.until: must be later than since")
    return await services.repos.audit.list(tenant, filt, limit=limit, cursor=cursor)


def in_utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` in UTC; 422 naming ``query.<name>`` for a time that has none
    (``0001-01-01T00:00+05:00`` is before year 1 in UTC)."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise unprocessable(f"query.{name}: out of range") from None
