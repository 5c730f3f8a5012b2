"""The benchmark harness at a small size: correctness only, never speed.

B1 runs through the runner's own code (real api, ingest variants, scheduler and
the empty baseline as processes, the fleet simulator as a separate process) and
B3 through ``bench/run``'s script call. Only correctness is asserted: the run is
``ok``, no non-2xx answer, every accepted heartbeat persisted, queues drained
(``measure`` fails a run whose queue does not drain or whose devices' ``last_seq``
differ from the last accepted seq).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # the bench scripts import each other by name
    sys.path.insert(0, str(BENCH))

runner = importlib.import_module("runner")
open_stack = importlib.import_module("stack").open_stack

# B1 runs ten variants (two of them in rollouts with the analysis off and on,
# three of them servers without the app).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_b1_heartbeats_end_to_end_are_all_persisted(
    server_db_url: str, amqp_url: str
) -> None:
    with open_stack(server_db_url, amqp_url, pin_cpus=False) as stack:
        try:
            line = await runner.bench_heartbeats(
                stack,
                runner.Load(
                    devices=200, interval=0.5, seconds=2, rounds=1, connections=64
                ),
                warmup=1,
            )
            before = await stack.committed()
            ready, dead = await stack.depth()
            db = await stack.db()
            aggregated = {
                (r["channel"], r["cohort"]): r["samples"]
                for r in await db.fetch(
                    "SELECT ro.channel, a.cohort, sum(a.samples) AS samples "
                    "FROM rollout_analysis AS a JOIN rollouts AS ro "
                    "ON ro.id = a.rollout_id GROUP BY ro.channel, a.cohort"
                )
            }
        finally:
            await stack.close()
    assert line["ok"], line
    assert line["non_2xx"] == 0
    assert line["accepted_total"] > 0
    assert line["persisted_total"] >= line["accepted_total"]
    assert before >= line["accepted_total"]
    assert (ready, dead) == (0, 0)
    # The figures exist (their size is not this test's business).
    assert {"figure", "baseline", "ratio", "unbatched", "traced"} <= line.keys()
    # Ingest on granian ran the same rounds, and each server's floor.
    assert {"granian", "granian_ratio", "us_per_heartbeat_granian"} <= line.keys()
    assert set(line["server_floor"]) == {"uvicorn", "granian"}
    # The analysis variants ran in the same run: the analysed fleet's heartbeats
    # were aggregated on both sides, the other rollout's never.
    assert {"rollout", "analysed", "analysis_cost"} <= line.keys()
    assert {"us_per_heartbeat_rollout", "us_per_heartbeat_analysed"} <= line.keys()
    assert set(aggregated) == {
        ("bench-analysed", "updated"),
        ("bench-analysed", "baseline"),
    }, aggregated
    assert all(n > 0 for n in aggregated.values())


def test_b3_planning_through_the_runner(server_db_url: str) -> None:
    lines = runner.run_script(
        "planning.py", ["--devices", "2000", "--rounds", "1"], db_url=server_db_url
    )
    assert [line.get("selector") for line in lines] == [
        "100%",
        "25%",
        "7%",
        "in 50%",
        "in/notin 7%",
    ], lines
    assert all(line["ok"] and line["same_plan"] for line in lines), lines


def test_b4_wave_advance_through_the_runner(server_db_url: str) -> None:
    """B4 at 2,000 devices: every wave's devices are told (the figures' size
    is not this test's business)."""
    lines = runner.run_script(
        "wave_advance.py", ["--devices", "2000", "--waves", "4"], db_url=server_db_url
    )
    assert len(lines) == 1, lines
    assert lines[0]["ok"], lines
    assert lines[0]["advances"] == 3, lines


def test_b7_agent_device_smoke_through_the_runner(server_db_url: str) -> None:
    """B7 in smoke mode: the agent claims, heartbeats 200 times and applies a
    16 MiB artifact, with the baseline in the same line (the figures against
    their targets are not this test's business: the machine is shared)."""
    lines = runner.run_script("agent_device.py", ["--smoke"], db_url=server_db_url)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["ok"], line
    assert line["download_applied"], line
    assert line["heartbeats"] >= 200, line
    assert line["spaced_heartbeats"] >= 50, line
    assert line["baseline_rss_kib"] > 0, line
    assert line["idle_rss_kib"] > 0, line
    assert line["idle_after_install_rss_kib"] > 0, line
    # The install ran in a child process, which the sampling saw.
    assert line["installer_peak_rss_kib"] > 0, line
    assert line["start_cpu_ms"] > 0, line
    # The download streams to disk: RSS does not grow with the artifact.
    assert line["download_rss_growth_kib"] < 8192, line
