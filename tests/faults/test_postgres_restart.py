"""Scenario 2: PostgreSQL is SIGKILLed and restarted during ingest and during a
wave advance.

The suite's own cluster is killed once while wave 1 is being reported (heartbeats
flowing) and once when wave 2 is nearly decided (the scheduler is about to advance
it), and restarted after a short outage (crash recovery through the WAL). Figures:
the api and ingest answer 503 with Retry-After, never 500, while it is down; the
services recover without a restart; every wave starts once and only after its
predecessor passed its gate; no acked heartbeat is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import httpx
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

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]

OUTAGE = 3.0


async def test_postgres_restarted_during_ingest_and_wave_advance(
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    undisturbed: Outcome,
    tmp_path: Path,
) -> None:
    api_codes: Counter[int] = Counter()
    api_503_without_retry_after = 0
    with open_stack(own_pg, own_rabbit, tmp_path) as stack:
        fleet = new_fleet(stack)
        plane = stack.plane

        async def probe_api(rollout_id: str, stop: asyncio.Event) -> None:
            nonlocal api_503_without_retry_after
            async with httpx.AsyncClient(
                base_url=plane.api_url, headers=plane.auth, timeout=10
            ) as http:
                while not stop.is_set():
                    for path in (f"/api/rollouts/{rollout_id}", "/api/devices"):
                        r = await http.get(path)
                        api_codes[r.status_code] += 1
                        if r.status_code == 503 and "retry-after" not in r.headers:
                            api_503_without_retry_after += 1
                    await asyncio.sleep(0.1)

        async def outage() -> None:
            await asyncio.to_thread(own_pg.kill)
            await asyncio.sleep(OUTAGE)
            await asyncio.to_thread(own_pg.start)

        async def kill_twice(rollout_id: str) -> None:
            stop = asyncio.Event()
            probe = asyncio.create_task(probe_api(rollout_id, stop))
            try:

                async def wave_one_reporting() -> bool:
                    rows = await fetch(
                        stack.db_url,
                        "SELECT succeeded + failed AS n FROM rollout_runs "
                        "WHERE rollout_id = $1::text::uuid AND wave = 1",
                        rollout_id,
                    )
                    return bool(rows) and rows[0]["n"] > 0

                await wait_for(wave_one_reporting, within=60)
                await outage()

                async def wave_two_nearly_decided() -> bool:
                    status, current = await rollout_status(stack.db_url, rollout_id)
                    if status != "running" or (current or 0) > 2:
                        return True
                    rows = await fetch(
                        stack.db_url,
                        "SELECT eligible, succeeded + failed AS n FROM rollout_runs "
                        "WHERE rollout_id = $1::text::uuid AND wave = 2",
                        rollout_id,
                    )
                    return bool(rows) and rows[0]["n"] >= 0.8 * rows[0]["eligible"]

                await wait_for(wave_two_nearly_decided, within=120, every=0.1)
                await outage()
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await probe

        try:
            outcome = await drive_rollout(stack, fleet, fault=kill_twice)
        finally:
            await fleet.close()
        starts = await wave_starts(stack.db_url, outcome.rollout_id)
        alive = all(p.running for p in (plane.api, plane.ingest, plane.scheduler))

    figure(
        f"FAULT postgres-restart-x2: api_503={api_codes[503]} "
        f"api_500={api_codes[500]} ingest_503={outcome.codes.get(503, 0)} "
        f"ingest_500={outcome.server_errors} "
        f"recovered_without_restart={str(alive).lower()} "
        f"waves={starts['waves']} runs_per_wave={starts['max_runs_per_wave']} "
        f"below_gate={len(starts['below_gate'])} missing={outcome.missing} "
        f"terminal={outcome.status} (undisturbed={undisturbed.status})"
    )
    assert api_codes[500] == 0, api_codes
    assert outcome.server_errors == 0, outcome.codes
    assert api_codes[503] > 0, f"the api never answered 503: {api_codes}"
    assert api_503_without_retry_after == 0
    assert outcome.unavailable_without_retry_after == 0
    assert alive, "a service exited during the database outages"
    assert starts["max_runs_per_wave"] == 1, starts
    assert starts["below_gate"] == [], starts
    assert outcome.missing == 0
    assert outcome.status == undisturbed.status
