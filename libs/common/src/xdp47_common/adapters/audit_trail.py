"""Append audit entries on a connection the caller holds in a transaction.

The one ``INSERT`` of the trail, shared by the API's repositories and the
scheduler's PostgreSQL adapter, so a record and the change it names commit or
roll back together. Nothing here updates or deletes (the table refuses it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from xdp47_common.models.audit import AuditEntry

__all__ = ["INSERT_AUDIT", "append_audit"]

INSERT_AUDIT = """
INSERT INTO audit_records (tenant, actor, actor_name, on_behalf_of,
                           on_behalf_of_name, action, subject_type, subject_id,
                           rollout_id, request_id, status_before, status_after,
                           outcome, detail)
SELECT tenant, actor, actor_name, on_behalf_of, on_behalf_of_name, action,
       subject_type, subject_id, rollout_id, request_id, status_before,
       status_after, outcome, detail::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::uuid[], $10::text[],
            $11::text[], $12::text[], $13::text[], $14::text[])
     WITH ORDINALITY
     AS e(tenant, actor, actor_name, on_behalf_of, on_behalf_of_name, action,
          subject_type, subject_id, rollout_id, request_id, status_before,
          status_after, outcome, detail, n)
ORDER BY n
"""

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


async def append_audit(conn: Connection, entries: Iterable[AuditEntry]) -> int:
    """Append ``entries`` in order (one statement); how many."""
    rows = list(entries)
    if not rows:
        return 0
    await conn.execute(
        INSERT_AUDIT,
        [e.tenant for e in rows],
        [e.actor for e in rows],
        [e.actor_name for e in rows],
        [e.on_behalf_of for e in rows],
        [e.on_behalf_of_name for e in rows],
        [e.action for e in rows],
        [e.subject_type for e in rows],
        [e.subject_id for e in rows],
        [e.rollout_id for e in rows],
        [e.request_id for e in rows],
        [e.status_before for e in rows],
        [e.status_after for e in rows],
        [e.outcome.value for e in rows],
        [json.dumps(e.detail) for e in rows],
    )
    return len(rows)
