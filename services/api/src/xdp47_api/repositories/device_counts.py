"""Inventory counts: how many devices a selector (and group) matches now, split
by version, status, channel or a label's value; one set-based statement each."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_common.adapters import selector_sql
from xdp47_common.models.group import CountBucket
from xdp47_common.selectors import SelectorJson

__all__ = ["COUNT_FIELDS", "MAX_BUCKETS", "PgDeviceCounts"]

# The fields a count splits by besides ``label:<key>``, and their columns.
COUNT_FIELDS = {
    "version": "d.current_version",
    "status": "d.status",
    "channel": "d.channel",
}
MAX_BUCKETS = 100
_WHERE = f"""
WHERE d.tenant = $1 AND {selector_sql.matches("$2")}
  AND ($3::uuid IS NULL OR {selector_sql.in_group("$3")})
"""  # nosec B608
COUNT = f"SELECT count(*) FROM devices AS d {_WHERE}"  # nosec B608
# $4: a COUNT_FIELDS name, or 'label' with the key in $5.
BUCKETS = f"""
SELECT v AS value, count(*) AS n FROM (
    SELECT CASE $4::text WHEN 'version' THEN d.current_version
                         WHEN 'status' THEN d.status
                         WHEN 'channel' THEN d.channel
                         ELSE d.labels->>$5::text END AS v
    FROM devices AS d {_WHERE}
) AS x
GROUP BY v ORDER BY n DESC, v NULLS LAST LIMIT {MAX_BUCKETS}
"""  # nosec B608


# Versions by the value of label $4: which versions run where.
BY_VERSION_AND_LABEL = f"""
SELECT d.current_version AS version, d.labels->>$4::text AS value, count(*) AS n
FROM devices AS d {_WHERE}
GROUP BY 1, 2 ORDER BY n DESC LIMIT {MAX_BUCKETS * 10}
"""  # nosec B608


class PgDeviceCounts:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def count(
        self, tenant: str, selector: SelectorJson, group_id: UUID | None = None
    ) -> int:
        return int(
            await self._pool.fetchval(COUNT, tenant, json.dumps(selector), group_id)
        )

    async def buckets(
        self,
        tenant: str,
        selector: SelectorJson,
        by: str,
        label: str | None = None,
        group_id: UUID | None = None,
    ) -> list[CountBucket]:
        """The largest ``MAX_BUCKETS`` groups of matching devices by ``by``."""
        rows = await self._pool.fetch(
            BUCKETS, tenant, json.dumps(selector), group_id, by, label
        )
        return [CountBucket(value=r["value"], count=int(r["n"])) for r in rows]

    async def by_version_and_label(
        self, tenant: str, selector: SelectorJson, label: str
    ) -> list[tuple[str | None, str | None, int]]:
        """(version, label value, count) of the matching devices, largest first."""
        rows = await self._pool.fetch(
            BY_VERSION_AND_LABEL, tenant, json.dumps(selector), None, label
        )
        return [(r["version"], r["value"], int(r["n"])) for r in rows]
