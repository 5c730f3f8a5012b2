"""Scenario 8: the PostgreSQL primary dies mid-rollout and its streaming standby
is promoted, with asynchronous and with synchronous replication.

The services get both servers in one multi-host URL with
``target_session_attrs=read-write``: they only ever write to the server that
accepts writes, so after the promotion they find the new primary by themselves.
The test plays the failover manager (Patroni, CloudNativePG, … in production):
when wave 2 has started it SIGKILLs the primary, reads what the standby holds
(hot standby, read-only), then promotes it.

Figures, per replication mode:
- ``hb_lost``: devices whose newest heartbeat was committed on the old primary
  but never reached the standby (the old primary's data dir is started alone
  afterwards and compared); ``repaired`` says whether every acked heartbeat is in
  the new primary at the end (a device's next heartbeat carries its whole state).
- ``decisions_lost``: wave starts or outcomes committed on the old primary and
  missing on the standby; ``max_runs_per_wave`` = 1 means none was repeated.
- ``recover_s``: from the kill to the first heartbeat batch committed on the new
  primary.
With synchronous replication nothing committed is lost; with asynchronous
replication the last moments may be, and the level-triggered heartbeats and the
reconcile loop heal what was.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.faults.harness import (
    Outcome,
    drive_rollout,
    fetch,
    figure,
    new_fleet,
    open_stack,
    rollout_status,
    wait_for,
    wave_starts,
)
from tests.support.brokers import OwnPostgres, OwnRabbit
from tests.support.control_plane import run_async
from tests.support.processes import run_migrate

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(600)]

_SEQS = "SELECT id, last_seq FROM devices"
_REPLAYED = (
    "SELECT coalesce(pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), true)"
    " AS done"
)
_RUNS = (
    "SELECT attempt, wave, started_at IS NOT NULL AS started, outcome "
    "FROM rollout_runs WHERE rollout_id = $1::text::uuid"
)


class Pair:
    """A primary and its streaming standby, and the URL the services get."""

    def __init__(self, synchronous: bool) -> None:
        self.synchronous = synchronous
        self.primary = OwnPostgres()
        self.primary.start()
        self.database = f"xdp47_failover_{uuid.uuid4().hex[:8]}"
        run_async(_execute(self.primary.url, f'CREATE DATABASE "{self.database}"'))
        self.standby = OwnPostgres(standby_of=self.primary)
        self.standby.start()
        if synchronous:
            # Only now: with no standby yet, every commit would wait forever.
            run_async(
                _execute(
                    self.primary.url,
                    "ALTER SYSTEM SET synchronous_standby_names = 'standby'",
                )
            )
            run_async(_execute(self.primary.url, "SELECT pg_reload_conf()"))

    def url(self, *servers: OwnPostgres, read_write: bool = True) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        query = "?target_session_attrs=read-write" if read_write else ""
        return f"postgresql://postgres@{hosts}/{self.database}{query}"

    @property
    def services_url(self) -> str:
        return self.url(self.primary, self.standby)

    def close(self) -> None:
        for server in (self.primary, self.standby):
            server.kill()
            server.cleanup()


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _streaming(pair: Pair) -> bool:
    """The standby streams (and, for synchronous replication, is the sync one)."""
    rows = await fetch(
        pair.url(pair.primary, read_write=False),
        "SELECT count(*) AS n FROM pg_stat_replication "
        "WHERE state = 'streaming' AND application_name = 'standby' "
        "AND sync_state = $1",
        "sync" if pair.synchronous else "async",
    )
    return bool(rows[0]["n"] >= 1)


@pytest.fixture(params=["async", "sync"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    servers = Pair(synchronous=request.param == "sync")
    try:
        yield servers
    finally:
        servers.close()


async def test_primary_killed_and_standby_promoted(
    pair: Pair,
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    undisturbed: Outcome,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    mode = request.node.callspec.params["pair"]
    await wait_for(lambda: _streaming(pair), within=60)
    run_migrate(pair.services_url, tmp_path / "logs")
    standby_url = pair.url(pair.standby, read_write=False)
    seen: dict[str, Any] = {}

    with open_stack(own_pg, own_rabbit, tmp_path, db_url=pair.services_url) as stack:
        fleet = new_fleet(stack)

        async def fail_over(rollout_id: str) -> None:
            loop = asyncio.get_running_loop()

            async def wave_two() -> bool:
                status, current = await rollout_status(stack.db_url, rollout_id)
                return status != "running" or (current or 0) >= 2

            await wait_for(wave_two, within=120)
            killed_at = loop.time()
            await asyncio.to_thread(pair.primary.kill)

            # A hot standby's reads see what it has replayed, which can trail
            # what it has received (and, with synchronous replication,
            # acknowledged): wait until it has replayed it all.
            async def replayed() -> bool:
                rows = await fetch(standby_url, _REPLAYED)
                return bool(rows[0]["done"])

            await wait_for(replayed, within=60, every=0.05)
            # What survives is what the standby holds now (read-only queries).
            seen["seqs"] = {
                r["id"]: r["last_seq"] for r in await fetch(standby_url, _SEQS)
            }
            seen["runs"] = {
                tuple(r) for r in await fetch(standby_url, _RUNS, rollout_id)
            }
            await asyncio.to_thread(pair.standby.promote)
            before = sum(seen["seqs"].values())

            async def writing_again() -> bool:
                rows = await fetch(
                    stack.db_url, "SELECT sum(last_seq) AS s FROM devices"
                )
                return bool((rows[0]["s"] or 0) > before)

            await wait_for(writing_again, within=120, every=0.1)
            seen["recover_s"] = round(loop.time() - killed_at, 1)

        try:
            outcome = await drive_rollout(stack, fleet, fault=fail_over, within=300)
        finally:
            await fleet.close()
        starts = await wave_starts(stack.db_url, outcome.rollout_id)
        alive = all(
            p.running
            for p in (stack.plane.api, stack.plane.ingest, stack.plane.scheduler)
        )

    # The old primary's last word: its data dir started alone on a new port
    # (never in the services' URL), read, and stopped.
    old = pair.primary
    await asyncio.to_thread(old.start_on_new_port)
    try:
        old_url = pair.url(old, read_write=False)
        old_seqs = {r["id"]: r["last_seq"] for r in await fetch(old_url, _SEQS)}
        old_runs = {tuple(r) for r in await fetch(old_url, _RUNS, outcome.rollout_id)}
    finally:
        await asyncio.to_thread(old.kill)
    hb_lost = sum(
        1 for device, seq in old_seqs.items() if seq > seen["seqs"].get(device, -1)
    )
    decisions_lost = len(old_runs - seen["runs"])

    figure(
        f"FAULT pg-failover-{mode}: hb_lost={hb_lost}/{len(old_seqs)} "
        f"repaired={str(outcome.missing == 0).lower()} "
        f"decisions_lost={decisions_lost} "
        f"max_runs_per_wave={starts['max_runs_per_wave']} "
        f"double_assign={outcome.double_assign} recover_s={seen['recover_s']} "
        f"terminal={outcome.status} (undisturbed={undisturbed.status}) "
        f"accepted={outcome.accepted} ingest_5xx_other={outcome.server_errors}"
    )
    assert outcome.missing == 0, "an acked heartbeat is missing after repair"
    assert outcome.double_assign == 0, fleet.told_twice()[:10]
    assert starts["max_runs_per_wave"] == 1, starts
    assert outcome.status == undisturbed.status
    assert alive, "a service exited during the failover"
    assert outcome.server_errors == 0, outcome.codes
    if mode == "sync":
        assert hb_lost == 0, "synchronous replication lost a committed heartbeat"
        assert decisions_lost == 0, "synchronous replication lost a decision"
