"""The audit trail as the API reads it (``GET /api/audit``), and the entries of
requests that changed nothing (a refused command) appended on their own.

Records are appended only (``xdp47_api.repositories._trail`` in the write's
transaction, or ``append`` here); the table refuses UPDATE and DELETE
(migration 0020). Every query takes the caller's tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from xdp47_api.pagination import Page, decode_cursor, invalid_cursor
from xdp47_api.repositories._paging import page_of
from xdp47_api.repositories._trail import record, writing
from xdp47_common.models.audit import AuditEntry, AuditRecord

__all__ = ["AuditFilter", "PgAuditRepository"]

_COLUMNS = (
    "seq, tenant, at, actor, actor_name, on_behalf_of, on_behalf_of_name, action, "
    "subject_type, subject_id, rollout_id, request_id, status_before, status_after, "
    "outcome, detail"
)

# The actor filter matches who acted and whom a scheduler decision acted for,
# by id (token:<id>, scheduler) or by the token's name. An action ending in
# ".*" is a prefix (rollout.* : every rollout action).
_WHERE = """
WHERE tenant = $1
  AND ($2::uuid IS NULL OR rollout_id = $2)
  AND ($3::text IS NULL OR actor = $3 OR actor_name = $3
       OR on_behalf_of = $3 OR on_behalf_of_name = $3)
  AND ($4::text IS NULL OR action = $4
       OR (right($4, 2) = '.*' AND starts_with(action, left($4, -1))))
  AND ($5::timestamptz IS NULL OR at >= $5)
  AND ($6::timestamptz IS NULL OR at < $6)
"""
LIST_NEWEST_FIRST = f"""
SELECT {_COLUMNS} FROM audit_records {_WHERE}
  AND ($7::bigint IS NULL OR seq < $7)
ORDER BY seq DESC LIMIT $8
"""  # nosec B608
LIST_OLDEST_FIRST = f"""
SELECT {_COLUMNS} FROM audit_records {_WHERE}
  AND ($7::bigint IS NULL OR seq > $7)
ORDER BY seq LIMIT $8
"""  # nosec B608

Order = Literal["desc", "asc"]


@dataclass(frozen=True)
class AuditFilter:
    rollout_id: UUID | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    order: Order = "desc"


def _seq_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    (seq,) = decode_cursor(cursor, 1)
    # A bigint; a cursor this server handed out always is one.
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
        raise invalid_cursor()
    return seq


class PgAuditRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def append(self, *entries: AuditEntry) -> None:
        """Append entries in a transaction of their own (a request that
        changed nothing else, e.g. a refused command)."""
        async with writing(self._pool) as conn:
            await record(conn, *entries)

    async def list(
        self, tenant: str, filt: AuditFilter, *, limit: int, cursor: str | None
    ) -> Page[AuditRecord]:
        """A page of ``tenant``'s records in ``seq`` order (newest first unless
        ``filt.order`` is ``asc``); the cursor is the last record's ``seq``."""
        query = LIST_OLDEST_FIRST if filt.order == "asc" else LIST_NEWEST_FIRST
        rows = await self._pool.fetch(
            query,
            tenant,
            filt.rollout_id,
            filt.actor,
            filt.action,
            filt.since,
            filt.until,
            _seq_cursor(cursor),
            limit + 1,
        )
        items = [AuditRecord.model_validate(dict(r)) for r in rows]
        return page_of(items, limit, lambda r: (r.seq,))
