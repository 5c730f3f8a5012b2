"""Maintenance windows in each device's zone and late joiners, with real agents
and demo apps.

Windows: two devices report zones 26 hours apart (Pacific/Kiritimati, +14, and
Etc/GMT+12, -12); the policy's windows are written relative to now in each
zone: one open now in the first zone, one opening at the next minute (at least
20 s away) in the second. The first device updates at once; the second is not
told until its window opens, then updates too.

Late joiners: a rollout of two waves whose first wave waits (grace) when a new
device that matches its selector is claimed; per ``late_joiners`` it gets a
target in the current wave, in the last wave, or none.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.fleet import start_fleet
from tests.e2e.operator_api import Operator, query
from tests.support.control_plane import ControlPlane
from tests.support.processes import ProcessGroup, wait_until
from xdp47_common.rollout.windows import DAYS

# A window opens up to 80 s after the rollout starts: more than the default
# 120 s per test once a loaded machine has started the fleet.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ZONES = ("Pacific/Kiritimati", "Etc/GMT+12")


@pytest.fixture(scope="module")
def e2e_plane_env() -> dict[str, str]:
    # Late joiners are looked for every half second here (30 s by default).
    return {"XDP47_SCHED_LATE_JOIN_INTERVAL": "0.5"}


@pytest.fixture
def operator(e2e_plane: ControlPlane) -> Iterator[Operator]:
    op = Operator(e2e_plane)
    yield op
    op.close()


def _window(start: datetime, minutes: int) -> str:
    """A one-day window from ``start`` (local, aware) for ``minutes``."""
    end = start + timedelta(minutes=minutes)
    return f"{DAYS[start.weekday()]} {start:%H:%M}-{end:%H:%M}"


def test_a_device_is_told_only_once_its_window_opens(
    e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path, operator: Operator
) -> None:
    fleet = start_fleet(
        e2e_plane,
        e2e_group,
        e2e_dir / "zoned",
        name=f"w{uuid.uuid4().hex[:6]}",
        size=2,
        agent_env=lambda n: {"XDP47_DEVICE_TIMEZONE": ZONES[n]},
    )
    early, late = fleet.devices
    before = late.applied_version
    now = datetime.now(UTC)
    open_now = now.astimezone(ZoneInfo(ZONES[0])).replace(second=0, microsecond=0)
    soon = (now + timedelta(seconds=80)).replace(second=0, microsecond=0)
    if soon - now < timedelta(seconds=20):
        soon += timedelta(minutes=1)
    opens = soon.astimezone(ZoneInfo(ZONES[1]))
    windows = [_window(open_now - timedelta(minutes=1), 30), _window(opens, 30)]
    policy = operator.policy(
        f"windows {fleet.label['fleet']}", maintenance_windows=windows
    )
    artifact = operator.upload(os.urandom(4096), "8.0.1")
    rollout = operator.rollout(
        artifact["id"], fleet.label, waves=1, policy_id=policy["id"], name="zoned"
    )
    operator.start(rollout["id"])

    wait_until(lambda: _applied(early, "8.0.1"), within=60)
    # Not told while its window is closed: its answer names when it opens.
    assert datetime.now(UTC) < soon
    assert late.applied_version == before
    row = operator.http.get(f"/api/devices/{late.id}").json()
    assert row["timezone"] == ZONES[1]
    (zone_row,) = query(
        e2e_plane.db_url,
        "SELECT open, next_open FROM rollout_windows "
        "WHERE rollout_id = $1::text::uuid AND zone = $2",
        rollout["id"],
        ZONES[1],
    )
    assert (zone_row["open"], zone_row["next_open"]) == (False, soon)

    final = operator.wait_status(rollout["id"], "completed", within=150)
    assert late.applied_version == "8.0.1"
    assert datetime.now(UTC) >= soon
    assert final["status"] == "completed"


def _applied(device: object, version: str) -> None:
    assert getattr(device, "applied_version", None) == version


@pytest.mark.parametrize("late_joiners", ["current_wave", "last_wave", "ignore"])
def test_a_late_joiner_follows_the_policy(
    late_joiners: str,
    e2e_plane: ControlPlane,
    e2e_group: ProcessGroup,
    e2e_dir: Path,
    operator: Operator,
) -> None:
    lane = f"l{uuid.uuid4().hex[:6]}"
    first = start_fleet(
        e2e_plane, e2e_group, e2e_dir / f"{lane}-a", name=f"{lane}a", size=1
    )
    policy = operator.policy(
        f"late {lane}", late_joiners=late_joiners, grace_seconds=15
    )
    artifact = operator.upload(os.urandom(4096), "9.0.1")
    selector = f"fleet in ({lane}a,{lane}b)"
    rollout = operator.rollout(
        artifact["id"], selector, waves=2, policy_id=policy["id"], name=lane
    )
    operator.start(rollout["id"])
    wait_until(lambda: _applied(first.devices[0], "9.0.1"), within=60)

    # Claimed after the start, while wave 1 waits out its grace.
    joined = start_fleet(
        e2e_plane, e2e_group, e2e_dir / f"{lane}-b", name=f"{lane}b", size=1
    )
    device = joined.devices[0]
    if late_joiners == "ignore":
        operator.wait_status(rollout["id"], "completed", within=90)
        assert device.id not in operator.targets(rollout["id"])
        assert device.applied_version != "9.0.1"
        return

    def targeted() -> None:
        assert device.id in operator.targets(rollout["id"])

    wait_until(targeted, within=30)
    (row,) = query(
        e2e_plane.db_url,
        "SELECT wave, late FROM rollout_targets "
        "WHERE rollout_id = $1::text::uuid AND device_id = $2",
        rollout["id"],
        device.id,
    )
    wave = 1 if late_joiners == "current_wave" else 2
    assert (row["wave"], row["late"]) == (wave, True)
    if late_joiners == "last_wave":
        # Not told before the last wave starts.
        assert operator.get(rollout["id"])["current_wave"] == 1
        assert device.applied_version != "9.0.1"
    final = operator.wait_status(rollout["id"], "completed", within=120)
    assert device.applied_version == "9.0.1"
    runs = {r["wave"]: r for r in operator.runs(rollout["id"])}
    assert runs[wave]["succeeded"] >= 1
    assert final["status"] == "completed"
