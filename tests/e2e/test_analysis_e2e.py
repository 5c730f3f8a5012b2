"""Telemetry analysis end to end: real agents reading real demo apps.

A subtly bad release (the demo app reports ``status: ok`` for a version containing
``subtle``, with an error rate ten points higher) passes ``require_ok`` on every
device it reaches; a policy whose analysis compares the updated devices' error
rate with the not-updated devices' stops it in wave 1, with a reason naming the
metric and both means, and nobody outside wave 1 is told to install it.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.e2e.fleet import Fleet
from tests.e2e.operator_api import Operator

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SUBTLE = "1.2.0-subtle"
CHECK = "error_rate: updated - baseline <= 0.02"


def test_the_subtly_bad_release_is_stopped_by_the_analysis_in_wave_one(
    e2e_fleet: Fleet, operator: Operator
) -> None:
    artifact = operator.upload(os.urandom(64 * 1024), SUBTLE)
    policy = operator.policy(
        "healthy-and-no-worse",
        require_ok=True,
        max_failures_per_wave=0,
        grace_seconds=1,
        analysis={"checks": [CHECK], "min_devices": 2},
    )
    assert policy["analysis"]["checks"] == [CHECK]
    rollout = operator.rollout(
        artifact["id"], e2e_fleet.label, waves=3, policy_id=policy["id"]
    )
    operator.start(rollout["id"])
    final = operator.wait_status(rollout["id"], "failed", within=90)
    reason = final["reason"]
    assert final["current_wave"] == 1, reason
    assert reason.startswith("wave 1: analysis failed: error_rate: "), reason
    means = re.search(
        r"updated mean ([\d.]+) \((\d+) devices.*"
        r"baseline mean ([\d.]+) \((\d+) devices",
        reason,
    )
    assert means is not None, reason
    updated, n_updated, baseline, n_baseline = means.groups()
    # The demo app: 0 to 0.01 for a good or no release, 0.10 more when subtle.
    assert 0.10 <= float(updated) <= 0.111, reason
    assert float(baseline) < 0.011, reason
    assert int(n_updated) >= 2, reason
    assert int(n_baseline) >= 2, reason
    assert "> 0.02" in reason
    # Healthy by its own status: require_ok alone applied it in wave 1.
    runs = operator.runs(rollout["id"])
    assert [(r["wave"], r["outcome"]) for r in runs] == [(1, "failed")]
    assert (runs[0]["succeeded"], runs[0]["failed"]) == (2, 0), runs
    rows = e2e_fleet.rows()
    on_subtle = sorted(d for d, r in rows.items() if r["current_version"] == SUBTLE)
    assert len(on_subtle) == 2, rows
    assert {rows[d]["health"] for d in on_subtle} == {"ok"}
