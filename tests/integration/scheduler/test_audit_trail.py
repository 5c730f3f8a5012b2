"""The scheduler's audit trail on PostgreSQL: a command's record and its
decisions' records commit with the change or not at all, and a rollout run
through the API and the live scheduler lists every action with its actor."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.integration.api.support import auth, client_for, mint, running_app
from tests.integration.scheduler.support import (
    applies,
    drive,
    gate_policy,
    make_fleet,
    make_rollout,
    rollout_row,
    status_is,
)
from xdp47_common.messages import RolloutEvent, StartRollout
from xdp47_common.models import ALL_SCOPES
from xdp47_common.rollout import Decision
from xdp47_common.settings import ControlSettings
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.pg import PgRolloutStore
from xdp47_scheduler.pg.store import PgRolloutTx
from xdp47_scheduler.ports import RolloutRow, RolloutTx

pytestmark = pytest.mark.integration

DEFAULTS = gate_policy(
    require_ok=False,
    skip_offline=False,
    grace_seconds=600,
    abort_on_zero_eligible=True,
    wave_deadline_seconds=600,
)


class Quiet:
    async def publish(self, events: Sequence[RolloutEvent]) -> None:
        pass


class FailingTx(PgRolloutTx):
    """Fails after the decision was applied (and its records appended)."""

    async def apply(
        self, row: RolloutRow, decision: Decision, reason: str | None
    ) -> bool:
        await super().apply(row, decision, reason)
        raise RuntimeError("crash before the commit")


class FailingStore(PgRolloutStore):
    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self._p = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[RolloutTx]:
        async with self._p.acquire() as conn, conn.transaction():
            yield FailingTx(conn)


async def _trail(pool, rid: uuid.UUID) -> list[Any]:
    found: list[Any] = await pool.fetch(
        "SELECT * FROM audit_records WHERE rollout_id = $1 ORDER BY seq", rid
    )
    return found


async def test_a_rolled_back_decision_leaves_no_record(pool) -> None:
    fleet = await make_fleet(pool, 2)
    rid = await make_rollout(pool, fleet)
    command = StartRollout(
        tenant=fleet.tenant, rollout_id=rid, requested_by="token:x", actor_name="x"
    )
    failing = RolloutEngine(FailingStore(pool), DEFAULTS, Quiet())
    with pytest.raises(RuntimeError, match="crash before the commit"):
        await failing.handle_command(command)
    assert await _trail(pool, rid) == []
    assert (await rollout_row(pool, rid))["status"] == "draft"

    engine = RolloutEngine(PgRolloutStore(pool), DEFAULTS, Quiet())
    await engine.handle_command(command)  # the redelivery
    await engine.drain()
    trail = await _trail(pool, rid)
    assert [(r["action"], r["actor"], r["on_behalf_of"]) for r in trail] == [
        ("rollout.start", "token:x", None),
        ("rollout.started", "scheduler", "token:x"),
        ("rollout.wave_started", "scheduler", "token:x"),
    ]
    # One transaction: one transaction id for the change and its records.
    xmins = await pool.fetch(
        "SELECT xmin::text AS x FROM audit_records WHERE rollout_id = $1 "
        "UNION SELECT xmin::text FROM rollouts WHERE id = $1",
        rid,
    )
    assert len(xmins) == 1
    await engine.handle_command(command)  # a duplicate records nothing
    await engine.drain()
    assert len(await _trail(pool, rid)) == 3


async def test_a_run_through_the_api_lists_every_action_with_its_actor(
    pool, db_url, amqp_url, sched_topology, scheduler, ingest, tmp_path
) -> None:
    fleet = await make_fleet(pool, 4)
    settings = ControlSettings(
        db_url=db_url,
        amqp_url=amqp_url,
        amqp_namespace=sched_topology.namespace,
        blob_dir=str(tmp_path),
        publish_timeout=5.0,
    )
    operator = await mint(pool, fleet.tenant, ALL_SCOPES, name="operator")
    h = {**auth(operator), "X-Request-ID": "req-run"}
    async with running_app(settings) as app, client_for(app) as api:
        ro = await api.post(
            "/api/rollouts",
            headers=h,
            json={
                "tenant": fleet.tenant,
                "artifact_id": str(fleet.artifact_id),
                "waves": 2,
            },
        )
        assert ro.status_code == 201, ro.text
        rid = uuid.UUID(ro.json()["id"])
        started = await api.post(f"/api/rollouts/{rid}:start", headers=h)
        assert started.status_code == 202, started.text
        await drive(
            pool, ingest, rid, fleet.devices, applies, until=status_is("completed")
        )
        late = await api.post(f"/api/rollouts/{rid}:abort", headers=h)
        assert late.status_code == 409
        listed = await api.get(
            "/api/audit",
            headers=h,
            params={"rollout": str(rid), "order": "asc"},
        )
    assert listed.status_code == 200, listed.text
    got = listed.json()
    me = got[0]["actor"]
    assert me.startswith("token:")
    seen = Counter(
        (
            r["action"],
            r["actor_name"] or r["actor"],
            r["on_behalf_of"],
            r["outcome"],
        )
        for r in got
    )
    assert seen == Counter(
        {
            ("rollout.created", "operator", None, "applied"): 1,
            ("rollout.start.requested", "operator", None, "accepted"): 1,
            ("rollout.start", "operator", None, "applied"): 1,
            ("rollout.started", "scheduler", me, "applied"): 1,
            ("rollout.wave_started", "scheduler", me, "applied"): 1,
            ("rollout.wave_finished", "scheduler", None, "applied"): 2,
            ("rollout.wave_started", "scheduler", None, "applied"): 1,
            ("rollout.completed", "scheduler", None, "applied"): 1,
            ("rollout.abort.requested", "operator", None, "refused"): 1,
        }
    )
    # The scheduler's records in the order it decided; the operator's requests
    # carry the request id, and so do the decisions taken on its command.
    decisions = [r["action"] for r in got if r["actor"] == "scheduler"]
    assert decisions == [
        "rollout.started",
        "rollout.wave_started",
        "rollout.wave_finished",
        "rollout.wave_started",
        "rollout.wave_finished",
        "rollout.completed",
    ]
    for r in got:
        if r["actor"] == me or r["on_behalf_of"] == me:
            assert r["request_id"] == "req-run", r
    assert got[-1]["status_after"] == "completed"
