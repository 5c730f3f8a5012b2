"""Start-up check: the database answers and has the schema the scheduler needs."""

from __future__ import annotations

import asyncpg

__all__ = ["database_problem"]

# Columns of the newest migrations the scheduler relies on (with the type where
# a migration changed it: the heartbeat statement writes the ring as json[]),
# and the types its heartbeat and analysis statements take (migrations 0029
# and 0032).
_SCHEMA_CHECK = """
SELECT (to_regtype('heartbeat_row') IS NULL)::int
     + (to_regtype('analysed_beat') IS NULL)::int + count(*)
FROM (VALUES ('rollouts', 'effective_policy', NULL),
             ('rollout_targets', 'baseline_apply', NULL),
             ('rollout_targets', 'device_attempt', NULL),
             ('outbox', 'sent_at', NULL),
             ('rollout_targets', 'late', NULL),
             ('devices', 'recent_heartbeats', 'ARRAY'))
    AS c(t, col, typ)
WHERE NOT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = c.t AND column_name = c.col
      AND (c.typ IS NULL OR data_type = c.typ)
)
"""


async def database_problem(dsn: str, where: str) -> str | None:
    """The one line an operator sees when the database at ``where`` (the DSN
    without its secret) cannot serve the scheduler; None when it can."""
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (
        OSError,
        TimeoutError,
        ValueError,  # a malformed DSN
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
    ) as exc:
        return f"cannot reach PostgreSQL at {where}: {exc}"
    try:
        missing = await conn.fetchval(_SCHEMA_CHECK)
    finally:
        await conn.close()
    if missing:
        return (
            f"the database at {where} has no current XDP47 schema; "
            "run xdp47-migrate first"
        )
    return None
