"""Maintenance windows and late joiners in the scheduler's SQL, on a database of
this module's own (no session scheduler refreshes or joins behind the tests'
backs): the per-zone window rows and when they are recomputed, the deadline a
wave's zones move, and late joiners per ``late_joiners``.

The engine starts the rollouts; its clock is the real one plus an offset the
tests move (a wave starts at the database's ``now()``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.conftest import migrated_database
from tests.support.waiting import until
from xdp47_common.messages import RolloutEvent, StartRollout
from xdp47_common.rollout import EffectivePolicy
from xdp47_common.rollout.windows import (
    first_open_at,
    parse_windows,
    window_state,
    zone_names,
)
from xdp47_ingest.notices import WaveChange, parse_notice
from xdp47_scheduler.engine import RolloutEngine
from xdp47_scheduler.pg import PgRolloutStore
from xdp47_scheduler.pg.late import join_late
from xdp47_scheduler.pg.progress import settle_devices
from xdp47_scheduler.pg.windows import deadline_from, refresh_windows

from .support import (
    Fleet,
    add_devices,
    make_fleet,
    make_policy,
    make_rollout,
    rollout_row,
)

pytestmark = pytest.mark.integration

DEFAULTS = EffectivePolicy(
    require_ok=True,
    skip_offline=True,
    grace_seconds=0,
    min_success_ratio=0.0,
    max_failures_per_wave=10,
    abort_on_zero_eligible=False,
    wave_deadline_seconds=60,
)


class _NoEvents:
    async def publish(self, events: Sequence[RolloutEvent]) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
async def wpool(server_db_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    async with migrated_database(server_db_url, "xdp47_windows") as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        assert pool is not None
        yield pool
        await pool.close()


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
async def engine(wpool: asyncpg.Pool[Any], clock: Clock) -> AsyncIterator[Any]:
    e = RolloutEngine(PgRolloutStore(wpool), DEFAULTS, _NoEvents(), clock=clock)
    yield e
    await e.drain()


def _hour_from_now() -> str:
    """A daily window of an hour that opens two hours from now (UTC wall time)."""
    start = datetime.now(UTC) + timedelta(hours=2)
    end = start + timedelta(hours=1)
    return f"daily {start:%H:%M}-{end:%H:%M}"


async def _start(
    pool: asyncpg.Pool[Any], engine: RolloutEngine, fleet: Fleet, **policy: Any
) -> uuid.UUID:
    pid = await make_policy(pool, fleet.tenant, **policy)
    rid = await make_rollout(pool, fleet, waves=2, policy_id=pid)
    await engine.handle_command(
        StartRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="tests")
    )
    await engine.drain()
    return rid


async def _windows(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> dict[str, Any]:
    rows = await pool.fetch("SELECT * FROM rollout_windows WHERE rollout_id = $1", rid)
    return {r["zone"]: r for r in rows}


async def test_refresh_keeps_a_row_per_zone_and_recomputes_only_what_is_due(
    wpool: asyncpg.Pool[Any], engine: RolloutEngine
) -> None:
    fleet = await make_fleet(wpool, 2)
    spec = ["Mon-Fri 01:00-05:00", "Sat 22:00-02:00"]
    rid = await _start(wpool, engine, fleet, maintenance_windows=spec)
    windows = parse_windows(spec)
    now = datetime.now(UTC)
    async with wpool.acquire() as conn:
        assert await refresh_windows(conn, now) >= len(zone_names()) + 1
    rows = await _windows(wpool, rid)
    assert set(rows) == {"", *zone_names()}
    started = rows["UTC"]["wave_started"]
    for zone in ("UTC", "Asia/Tokyo", "Pacific/Kiritimati", "Etc/GMT+12"):
        state = window_state(windows, ZoneInfo(zone), now)
        row = rows[zone]
        assert (row["open"], row["since"], row["changes_at"], row["next_open"]) == (
            state.open,
            state.since,
            state.changes_at,
            state.next_open,
        ), zone
        assert row["wave_opened"] == first_open_at(windows, ZoneInfo(zone), started)
        assert row["resolved"] == zone
    assert rows[""]["resolved"] == "UTC"  # no tenant default

    async with wpool.acquire() as conn:
        assert await refresh_windows(conn, now) == 0  # nothing due
        # A row whose change is due is recomputed; one that is not stays.
        await conn.execute(
            "UPDATE rollout_windows SET open = NOT open, changes_at = $2 "
            "WHERE rollout_id = $1 AND zone = 'Asia/Tokyo'",
            rid,
            now - timedelta(seconds=1),
        )
        await conn.execute(
            "UPDATE rollout_windows SET next_open = NULL "
            "WHERE rollout_id = $1 AND zone = 'Europe/Berlin'",
            rid,
        )
        assert await refresh_windows(conn, now) == 1
    rows = await _windows(wpool, rid)
    assert (
        rows["Asia/Tokyo"]["open"]
        == window_state(windows, ZoneInfo("Asia/Tokyo"), now).open
    )
    assert rows["Europe/Berlin"]["next_open"] is None

    # The tenant's default zone moves the '' row, and only it.
    await wpool.execute(
        "UPDATE tenants SET default_timezone = 'Asia/Tokyo' WHERE id = $1",
        fleet.tenant,
    )
    async with wpool.acquire() as conn:
        assert await refresh_windows(conn, now) == 1
    rows = await _windows(wpool, rid)
    assert rows[""]["resolved"] == "Asia/Tokyo"
    assert rows[""]["next_open"] == rows["Asia/Tokyo"]["next_open"]


async def test_a_wave_does_not_time_out_before_its_zones_windows_open(
    wpool: asyncpg.Pool[Any], engine: RolloutEngine, clock: Clock
) -> None:
    fleet = await make_fleet(wpool, 2)
    utc, tokyo = fleet.devices
    await wpool.execute(
        "UPDATE devices SET timezone = 'UTC' WHERE tenant = $1 AND id = $2",
        fleet.tenant,
        utc.id,
    )
    await wpool.execute(
        'UPDATE devices SET labels = \'{"timezone": "Asia/Tokyo"}\' '
        "WHERE tenant = $1 AND id = $2",
        fleet.tenant,
        tokyo.id,
    )
    spec = [_hour_from_now()]
    # One wave of both devices (two waves over two devices would split them).
    pid = await make_policy(wpool, fleet.tenant, maintenance_windows=spec)
    rid = await make_rollout(wpool, fleet, waves=1, policy_id=pid)
    await engine.handle_command(
        StartRollout(tenant=fleet.tenant, rollout_id=rid, requested_by="tests")
    )
    await engine.drain()
    started = await wpool.fetchval(
        "SELECT current_wave_started_at FROM rollouts WHERE id = $1", rid
    )
    opens = {
        z: first_open_at(parse_windows(spec), ZoneInfo(z), started)
        for z in ("UTC", "Asia/Tokyo")
    }
    assert opens["UTC"] is not None
    assert opens["Asia/Tokyo"] is not None
    assert opens["UTC"] < opens["Asia/Tokyo"]

    async def at(instant: datetime) -> tuple[bool, datetime | None, str]:
        clock.offset = instant - datetime.now(UTC)
        now = clock()
        async with wpool.acquire() as conn:
            await refresh_windows(conn, now)
            waiting, latest = await deadline_from(conn, rid, 1, started, now)
        await engine.evaluate(rid)
        status = await wpool.fetchval("SELECT status FROM rollouts WHERE id = $1", rid)
        return waiting, latest, status

    # Past the deadline from the start; neither window has opened.
    assert await at(started + timedelta(minutes=10)) == (
        True,
        opens["Asia/Tokyo"],
        "running",
    )
    # UTC's opened long enough ago, Tokyo's has not: still no deadline.
    assert (await at(opens["UTC"] + timedelta(minutes=5)))[::2] == (True, "running")
    # Tokyo's window opened 30 s ago: the deadline counts from there.
    assert await at(opens["Asia/Tokyo"] + timedelta(seconds=30)) == (
        False,
        opens["Asia/Tokyo"],
        "running",
    )
    waiting, _, status = await at(opens["Asia/Tokyo"] + timedelta(seconds=90))
    # Timed out (min_success_ratio 0: the rollout ends partial).
    assert (waiting, status) == (False, "partial")
    reasons = await wpool.fetch(
        "SELECT reason FROM rollout_targets WHERE rollout_id = $1", rid
    )
    assert {r["reason"] for r in reasons} == {"timed_out"}


async def _late(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT device_id, wave FROM rollout_targets WHERE rollout_id = $1 AND late",
        rid,
    )
    return {r["device_id"]: r["wave"] for r in rows}


async def _heard(
    pool: asyncpg.Pool[Any],
    action: Callable[[Any], Awaitable[None]],
) -> list[str]:
    """The ``xdp47_desired`` payloads sent while ``action`` ran on a connection
    of ``pool``: a marker sent after it arrives last (notifications come in
    commit order), so every payload of ``action`` has arrived by then."""
    heard: list[str] = []

    def hear(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        heard.append(str(payload))

    marker = f"marker {uuid.uuid4()}"
    async with pool.acquire() as listener:
        await listener.add_listener("xdp47_desired", hear)
        try:
            async with pool.acquire() as conn:
                await action(conn)
                await conn.execute("SELECT pg_notify('xdp47_desired', $1)", marker)

            async def arrived() -> bool:
                return marker in heard

            await until(arrived)
        finally:
            await listener.remove_listener("xdp47_desired", hear)
    return heard[: heard.index(marker)]


async def _counts(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> dict[str, int]:
    """Wave 1's run's ``eligible`` and wave 2's ``pending`` (its count to come)."""
    row = await pool.fetchrow(
        "SELECT (SELECT eligible FROM rollout_runs WHERE rollout_id = $1 AND wave = 1)"
        " AS eligible,"
        " (SELECT pending FROM rollout_waves WHERE rollout_id = $1 AND wave = 2)"
        " AS pending",
        rid,
    )
    assert row is not None
    return dict(row)


@pytest.mark.parametrize(
    ("setting", "wave"), [("current_wave", 1), ("last_wave", 2), ("ignore", None)]
)
async def test_a_late_joiner_gets_a_target_per_the_setting(
    wpool: asyncpg.Pool[Any], engine: RolloutEngine, setting: str, wave: int | None
) -> None:
    fleet = await make_fleet(wpool, 4)
    rid = await _start(wpool, engine, fleet, late_joiners=setting)
    before = await _counts(wpool, rid)
    (late,) = await add_devices(wpool, fleet.tenant, 1, prefix="late")

    async def join_twice(conn: Any) -> None:
        await join_late(conn)
        await join_late(conn)  # a second look joins nobody again

    heard = await _heard(wpool, join_twice)
    after = await _counts(wpool, rid)
    if wave is None:
        assert await _late(wpool, rid) == {}
        assert after == before
        assert heard == []
        return
    assert await _late(wpool, rid) == {late.id: wave}
    # Ingest's cached answers: a joiner of the running wave drops only that
    # wave's late targets; one of a later wave waits for that wave's start.
    if wave == 1:
        assert [parse_notice(p) for p in heard] == [
            (fleet.tenant, WaveChange(rid, 0, 1, late_only=True))
        ]
    else:
        assert heard == []
    if wave == 1:  # the running wave's count grows: its gate waits for it
        assert after["eligible"] == before["eligible"] + 1
        assert after["pending"] == before["pending"]
    else:
        assert after["pending"] == before["pending"] + 1
        assert after["eligible"] == before["eligible"]


@pytest.mark.parametrize("case", ["held", "rollback", "had_a_target"])
async def test_no_late_joiner_for_held_rollouts_rollbacks_or_released_devices(
    wpool: asyncpg.Pool[Any], engine: RolloutEngine, case: str
) -> None:
    fleet = await make_fleet(wpool, 2)
    rid = await _start(wpool, engine, fleet, late_joiners="current_wave")
    if case == "held":
        await wpool.execute(
            "UPDATE rollouts SET hold = 'paused', held_since = now() WHERE id = $1",
            rid,
        )
    elif case == "rollback":
        await wpool.execute(
            "UPDATE rollouts SET kind = 'rollback', rollback_of = $2 WHERE id = $1",
            rid,
            await make_rollout(wpool, fleet),
        )
    else:
        # A device of the rollout released (skipped) and matching again.
        await wpool.execute(
            "UPDATE rollout_targets SET state = 'skipped', active = false, "
            "reason = 'offline' WHERE rollout_id = $1 AND device_id = $2",
            rid,
            fleet.devices[0].id,
        )
    await add_devices(wpool, fleet.tenant, 1, prefix="late")
    async with wpool.acquire() as conn:
        await join_late(conn)
    late = await _late(wpool, rid)
    if case == "had_a_target":
        assert fleet.devices[0].id not in late
        assert len(late) == 1  # the new device joins, the released one not
    else:
        assert late == {}


async def _apply(pool: asyncpg.Pool[Any], fleet: Fleet, device_id: str) -> None:
    """The device reports it runs the rollout's artifact; its targets are judged."""
    await pool.execute(
        "UPDATE devices SET current_artifact_id = $3, health = 'ok', status = 'online'"
        " WHERE tenant = $1 AND id = $2",
        fleet.tenant,
        device_id,
        fleet.artifact_id,
    )
    async with pool.acquire() as conn, conn.transaction():
        await settle_devices(conn, [(fleet.tenant, device_id)])


async def _wave_one(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> tuple[int, ...]:
    row = await pool.fetchrow(
        "SELECT eligible, succeeded, skipped FROM rollout_runs "
        "WHERE rollout_id = $1 AND wave = 1",
        rid,
    )
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("order", ["join_then_follow_up", "follow_up_then_join"])
async def test_a_late_joiner_claimed_before_its_first_heartbeat_is_counted(
    wpool: asyncpg.Pool[Any], engine: RolloutEngine, order: str
) -> None:
    # A claimed device is 'unknown' until its first heartbeat: under
    # skip_offline it must not join (and be skipped offline by the follow-up)
    # before it is online; once online it joins, and wave 1's gate waits for it.
    fleet = await make_fleet(wpool, 2)
    rid = await _start(
        wpool, engine, fleet, late_joiners="current_wave", min_success_ratio=1.0
    )
    first = {
        r["device_id"]
        for r in await wpool.fetch(
            "SELECT device_id FROM rollout_targets WHERE rollout_id = $1 AND wave = 1",
            rid,
        )
    }
    (late,) = await add_devices(wpool, fleet.tenant, 1, prefix="late", status="unknown")

    async def join() -> None:
        async with wpool.acquire() as conn:
            await join_late(conn)

    async def follow_up() -> None:
        await engine.follow_up(rid)
        await engine.drain()

    steps = [join, follow_up] if order == "join_then_follow_up" else [follow_up, join]
    for run in steps:
        await run()
    await wpool.execute(
        "UPDATE devices SET status = 'online' WHERE tenant = $1 AND id = $2",
        fleet.tenant,
        late.id,
    )
    for run in steps:
        await run()
    await follow_up()  # the timer's next look moves a target joined since
    assert await _late(wpool, rid) == {late.id: 1}
    assert (await _targets(wpool, rid))[late.id] == "assigned"
    assert await _wave_one(wpool, rid) == (len(first) + 1, 0, 0)

    # Wave 1's own devices apply: the gate waits for the late joiner.
    for device_id in first:
        await _apply(wpool, fleet, device_id)
    await engine.evaluate(rid)
    assert (await rollout_row(wpool, rid))["current_wave"] == 1
    assert await _wave_one(wpool, rid) == (len(first) + 1, len(first), 0)
    await _apply(wpool, fleet, late.id)
    await engine.evaluate(rid)
    await engine.drain()
    assert (await rollout_row(wpool, rid))["current_wave"] == 2
    assert await _wave_one(wpool, rid) == (len(first) + 1, len(first) + 1, 0)


async def _targets(pool: asyncpg.Pool[Any], rid: uuid.UUID) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT device_id, state FROM rollout_targets WHERE rollout_id = $1", rid
    )
    return {r["device_id"]: r["state"] for r in rows}
