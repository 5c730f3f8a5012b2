"""Migrations 0029 and 0032: the scheduler's heartbeat statement takes one
array of ``heartbeat_row``, its analysis statement one of ``analysed_beat``; a
scheduler does not start on a database without them, and the heartbeat
statement writes every field of a heartbeat through its type."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from xdp47_common.adapters.migrations import load_migrations, migrate
from xdp47_common.clock import utcnow
from xdp47_common.messages import Heartbeat, HeartbeatBatch
from xdp47_common.models.device import ApplyResult, Health, LastApply
from xdp47_scheduler.heartbeats import write_heartbeats
from xdp47_scheduler.pg import database_problem

pytestmark = pytest.mark.integration

HEARTBEAT_ROW = 29
ANALYSED_BEAT = 32


async def test_the_scheduler_needs_the_type_and_writes_through_it(
    empty_db: str,
) -> None:
    before = [m for m in load_migrations() if m.version < HEARTBEAT_ROW]
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, before)
        problem = await database_problem(empty_db, "here")
        assert problem is not None
        assert "run xdp47-migrate first" in problem
        with_row = [m for m in load_migrations() if m.version < ANALYSED_BEAT]
        assert HEARTBEAT_ROW in await migrate(conn, with_row)
        problem = await database_problem(empty_db, "here")
        assert problem is not None
        assert "run xdp47-migrate first" in problem
        assert ANALYSED_BEAT in await migrate(conn)
        assert await database_problem(empty_db, "here") is None

        await conn.execute("INSERT INTO tenants (id, name) VALUES ('a', 'a')")
        await conn.execute("INSERT INTO devices (tenant, id) VALUES ('a', 'd')")
        artifact = uuid.uuid4()
        at = utcnow()
        # Text a literal array would have to quote: the row's fields go
        # through the binary encoding as they are.
        version = 'v"1,\\2} {x}'
        apply = LastApply(
            artifact_id=artifact, result=ApplyResult.FAILED, reason='a,b "c"'
        )
        beat = Heartbeat(
            seq=3,
            device_id="d",
            received_at=at,
            current_version=version,
            current_artifact_id=artifact,
            last_apply=apply,
            health=Health.DEGRADED,
            metrics={"cpu": 0.5, "label": 'ü,"}'},
        )
        async with conn.transaction():
            result = await write_heartbeats(
                conn, [HeartbeatBatch(tenant="a", heartbeats=[beat])]
            )
        assert [(c.tenant, c.device_id) for c in result.changed] == [("a", "d")]
        row: Any = await conn.fetchrow(
            "SELECT last_seq, health, current_version, current_artifact_id,"
            " last_apply::text, last_metrics::text, last_seen,"
            " recent_heartbeats::text[] AS ring FROM devices WHERE id = 'd'"
        )
        assert row["last_seq"] == 3
        assert row["health"] == "degraded"
        assert row["current_version"] == version
        assert row["current_artifact_id"] == artifact
        assert LastApply.model_validate_json(row["last_apply"]) == apply
        assert json.loads(row["last_metrics"]) == beat.metrics
        assert row["last_seen"] == at
        [entry] = [json.loads(e) for e in row["ring"]]
        assert entry["seq"] == 3
        assert entry["health"] == "degraded"
        assert entry["metrics"] == beat.metrics
    finally:
        await conn.close()
