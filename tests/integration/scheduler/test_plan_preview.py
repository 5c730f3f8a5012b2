"""``GET /api/rollouts/{id}/plan``: the preview of a draft with exclusion reasons,
and the stored targets once started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.integration.api.support import auth, client_for, mint, running_app
from tests.integration.scheduler.support import (
    add_devices,
    make_fleet,
    make_policy,
    make_rollout,
    rollout_row,
    wait_for,
)
from xdp47_common.adapters.planning import RANK_KEY
from xdp47_common.models import Scope
from xdp47_common.rollout.windows import parse_windows, window_state
from xdp47_common.settings import ControlSettings
from xdp47_scheduler.pg.late import join_late

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def api(
    db_url, amqp_url, sched_topology, sched_connection
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ControlSettings(
        db_url=db_url,
        amqp_url=amqp_url,
        amqp_namespace=sched_topology.namespace,
        sched_skip_offline=True,
    )
    async with running_app(settings) as app, client_for(app) as client:
        yield client


async def test_preview_lists_waves_and_exclusion_reasons(pool, api) -> None:
    fleet = await make_fleet(pool, 5, labels={"site": "a"})
    tenant = fleet.tenant
    offline = await add_devices(pool, tenant, 1, labels={"site": "a"}, status="offline")
    mismatch = await add_devices(pool, tenant, 2, labels={"site": "b"}, prefix="m")
    beta = await add_devices(
        pool, tenant, 1, labels={"site": "a"}, channel="beta", prefix="b"
    )
    other = await make_rollout(pool, fleet, waves=1)
    busy = fleet.devices[0]
    await pool.execute(
        "INSERT INTO rollout_targets (rollout_id, tenant, device_id, wave) "
        "VALUES ($1, $2, $3, 1)",
        other,
        tenant,
        busy.id,
    )
    rid = await make_rollout(pool, fleet, waves=2, selector={"site": "a"})
    token = await mint(pool, tenant, {Scope.ROLLOUTS_READ})

    r = await api.get(f"/api/rollouts/{rid}/plan?limit=2", headers=auth(token))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["preview"] is True
    assert plan["total"] == 5  # 4 online + 1 offline, the busy one left out
    assert [w["size"] for w in plan["waves"]] == [3, 2]
    assert plan["waves"][0]["truncated"] is True
    assert len(plan["waves"][0]["devices"]) == 2
    assert plan["excluded_counts"] == {
        "in_another_rollout": 1,
        "label_mismatch": 2,
        "offline": 1,
        "wrong_channel": 1,
    }
    reasons = {e["device_id"]: e["reason"] for e in plan["excluded"]}
    assert reasons[busy.id] == "in_another_rollout"
    assert reasons[offline[0].id] == "offline"
    assert reasons[beta[0].id] == "wrong_channel"
    assert {reasons[d.id] for d in mismatch} == {"label_mismatch"}
    flagged = [
        d["device_id"] for w in plan["waves"] for d in w["devices"] if d["would_skip"]
    ]
    assert set(flagged) <= {offline[0].id}
    # Read-only: nothing was written.
    n = await pool.fetchval(
        "SELECT count(*) FROM rollout_targets WHERE rollout_id = $1", rid
    )
    assert n == 0

    r = await api.get(f"/api/rollouts/{rid}/plan?limit=0", headers=auth(token))
    assert r.status_code == 422
    assert "limit" in r.text


async def test_plan_of_a_started_rollout_shows_target_states(
    pool, api, scheduler, commands
) -> None:
    fleet = await make_fleet(pool, 3)
    rid = await make_rollout(pool, fleet, waves=3)
    await commands.start(fleet.tenant, rid)

    async def running():
        assert (await rollout_row(pool, rid))["status"] == "running"

    await wait_for(running)
    token = await mint(pool, fleet.tenant, {Scope.ROLLOUTS_READ})
    plan = (await api.get(f"/api/rollouts/{rid}/plan", headers=auth(token))).json()
    assert plan["preview"] is False
    assert plan["total"] == 3
    assert plan["waves"][0]["states"] == {"assigned": 1}
    assert plan["waves"][1]["states"] == {"pending": 1}
    assert plan["waves"][0]["devices"][0]["state"] == "assigned"
    stranger = await make_fleet(pool, 0)
    other = await mint(pool, stranger.tenant, {Scope.ROLLOUTS_READ})
    r = await api.get(f"/api/rollouts/{rid}/plan", headers=auth(other))
    assert r.status_code == 404


async def test_preview_shows_each_devices_window_in_its_zone(pool, api) -> None:
    fleet = await make_fleet(pool, 3)
    tenant = fleet.tenant
    reported, labelled, default = (d.id for d in fleet.devices)
    await pool.execute(
        "UPDATE devices SET timezone = 'Pacific/Kiritimati' WHERE id = $1", reported
    )
    await pool.execute(
        'UPDATE devices SET labels = \'{"timezone": "Asia/Tokyo"}\' WHERE id = $1',
        labelled,
    )
    await pool.execute(
        "UPDATE tenants SET default_timezone = 'America/New_York' WHERE id = $1", tenant
    )
    spec = ["Mon-Fri 01:00-05:00", "Sat 22:00-02:00"]
    pid = await make_policy(pool, tenant, maintenance_windows=spec)
    rid = await make_rollout(pool, fleet, waves=1, policy_id=pid)
    token = await mint(pool, tenant, {Scope.ROLLOUTS_READ})

    r = await api.get(f"/api/rollouts/{rid}/plan", headers=auth(token))
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    shown = {d["device_id"]: d for d in r.json()["waves"][0]["devices"]}
    zones = {
        reported: "Pacific/Kiritimati",
        labelled: "Asia/Tokyo",
        default: "America/New_York",
    }
    for device, zone in zones.items():
        state = window_state(parse_windows(spec), ZoneInfo(zone), now)
        d = shown[device]
        assert d["timezone"] == zone
        assert d["window_open"] is state.open
        assert d["window_opens_at"] is not None
        assert datetime.fromisoformat(d["window_opens_at"]) == state.next_open

    # Without windows the plan shows none.
    plain = await make_rollout(pool, fleet, waves=1)
    r = await api.get(f"/api/rollouts/{plain}/plan", headers=auth(token))
    device = r.json()["waves"][0]["devices"][0]
    assert (device["window_open"], device["window_opens_at"]) == (None, None)


async def test_plan_and_progress_count_late_joiners(
    pool, api, scheduler, commands
) -> None:
    fleet = await make_fleet(pool, 2)
    pid = await make_policy(pool, fleet.tenant, late_joiners="current_wave")
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await commands.start(fleet.tenant, rid)

    async def running():
        assert (await rollout_row(pool, rid))["status"] == "running"

    await wait_for(running)
    # Only a device whose rank falls in a written wave is late (one ranked into
    # wave 2 simply joins it when it starts): add devices until one falls in 1.
    for _ in range(50):
        (late_device,) = await add_devices(pool, fleet.tenant, 1, prefix="late")
        in_written_wave = await pool.fetchval(
            f"SELECT width_bucket({RANK_KEY}, p.firsts) <= p.materialised"
            " FROM rollout_plans AS p, devices AS d"
            " WHERE p.rollout_id = $1 AND d.tenant = $2 AND d.id = $3",
            rid,
            fleet.tenant,
            late_device.id,
        )
        if in_written_wave:
            break
    else:
        pytest.fail("no added device ranked into the written wave")
    async with pool.acquire() as conn:
        await join_late(conn)
    token = await mint(pool, fleet.tenant, {Scope.ROLLOUTS_READ})
    h = auth(token)
    plan = (await api.get(f"/api/rollouts/{rid}/plan", headers=h)).json()
    assert [w["late"] for w in plan["waves"]] == [1, 0]
    late = {d["device_id"]: d["late"] for d in plan["waves"][0]["devices"]}
    assert late[late_device.id] is True
    assert sum(late.values()) == 1
    progress = (await api.get(f"/api/rollouts/{rid}/progress", headers=h)).json()
    assert [w["late"] for w in progress["waves"]] == [1, 0]
    assert progress["late"] == 1
    assert progress["waves"][0]["total"] == 2
    devices = (await api.get(f"/api/rollouts/{rid}/devices", headers=h)).json()
    assert {d["device_id"] for d in devices if d["late"]} == {late_device.id}
