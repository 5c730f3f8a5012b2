"""The operator CLI ``xdp47`` (as a subprocess) against the live stack: log in,
upload a release, create a rollout, preview its plan, start it and watch it to
the end. ``watch`` exits 0 when the real fleet takes the good release and 4
(failed) when the demo apps report the bad one failing; ``-o json`` parses."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleet import Fleet
from tests.support.control_plane import ControlPlane
from tests.support.processes import BIN, clean_env

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

WATCH_TIMEOUT = "60"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@pytest.fixture
def xdp47(tmp_path: Path):
    """Run the ``xdp47`` script with a config file of this test's own."""
    env = clean_env(XDP47_CONFIG=str(tmp_path / "config.json"), COLUMNS="200")

    def run(*args: str, timeout: float = 90) -> Ran:
        done = subprocess.run(
            [str(BIN / "xdp47"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    return run


def _release(
    xdp47, tmp_path: Path, version: str, plane: ControlPlane
) -> dict[str, Any]:
    path = tmp_path / f"app-{version}.bin"
    path.write_bytes(os.urandom(32 * 1024))
    artifact = xdp47(
        "artifacts", "create", "-f", str(path), "--version", version, "-o", "json"
    ).json()
    assert artifact["uri"].startswith(plane.api_url)
    return dict(artifact)


def _rollout(xdp47, artifact_id: str, fleet: Fleet, *extra: str) -> str:
    ((key, value),) = fleet.label.items()
    created = xdp47(
        "rollouts",
        "create",
        "--artifact",
        artifact_id,
        "--waves",
        "3",
        "--selector",
        f"{key}={value}",
        *extra,
        "-o",
        "json",
    ).json()
    assert created["status"] == "draft"
    rollout_id = str(created["id"])
    plan = xdp47("rollouts", "plan", rollout_id)
    assert plan.code == 0, plan.stderr
    assert f"{len(fleet.devices)} devices in 3 waves" in plan.stdout, plan.stdout
    # One table row per wave: WAVE SIZE STATES DEVICES (comma-separated ids).
    rows = [line.split(None, 3) for line in plan.stdout.splitlines()]
    waves = {
        int(r[0]): r[3]
        for r in rows
        if len(r) == 4 and r[0].isdigit() and r[1].isdigit()
    }
    assert sorted(waves) == [1, 2, 3], plan.stdout
    planned = {d.strip() for ids in waves.values() for d in ids.split(",")}
    assert planned == set(fleet.ids), plan.stdout
    started = xdp47("rollouts", "start", rollout_id)
    assert started.code == 0, started.stderr
    assert "start requested" in started.stdout
    return rollout_id


def test_create_plan_start_watch_good_then_bad(
    xdp47, tmp_path: Path, e2e_plane: ControlPlane, e2e_fleet: Fleet
) -> None:
    login = xdp47(
        "login",
        "--url",
        e2e_plane.api_url,
        "--token",
        e2e_plane.token,
        "--tenant",
        e2e_plane.tenant,
    )
    assert login.code == 0, login.stderr

    good = _release(xdp47, tmp_path, "5.0.0", e2e_plane)
    good_rollout = _rollout(xdp47, good["id"], e2e_fleet)
    watched = xdp47("rollouts", "watch", good_rollout, "--timeout", WATCH_TIMEOUT)
    assert watched.code == 0, (watched.stdout, watched.stderr)
    versions = {
        d["current_version"]
        for d in xdp47(
            "devices", "ls", "-l", "fleet=" + e2e_fleet.label["fleet"], "-o", "json"
        ).json()
    }
    assert versions == {"5.0.0"}

    policy = xdp47(
        "policies",
        "create",
        "cli-require-ok",
        "--require-ok",
        "--max-failures-per-wave",
        "0",
        "--grace-seconds",
        "1",
        "-o",
        "json",
    ).json()
    bad = _release(xdp47, tmp_path, "5.1.0-bad", e2e_plane)
    bad_rollout = _rollout(xdp47, bad["id"], e2e_fleet, "--policy", policy["id"])
    watched = xdp47("rollouts", "watch", bad_rollout, "--timeout", WATCH_TIMEOUT)
    assert watched.code == 4, (watched.stdout, watched.stderr)

    listed = {r["id"]: r for r in xdp47("rollouts", "ls", "-o", "json").json()}
    assert listed[good_rollout]["status"] == "completed"
    assert listed[bad_rollout]["status"] == "failed"
    good_runs = xdp47("rollouts", "runs", good_rollout, "-o", "json").json()
    assert [(r["wave"], r["outcome"]) for r in good_runs] == [
        (1, "succeeded"),
        (2, "succeeded"),
        (3, "succeeded"),
    ]
    bad_runs = xdp47("rollouts", "runs", bad_rollout, "-o", "json").json()
    assert [(r["wave"], r["outcome"]) for r in bad_runs] == [(1, "failed")]
