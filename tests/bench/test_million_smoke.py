"""B6's harness at a small size: correctness only, never speed.

300 devices heartbeating every 2 s, a burst of 10 % of them within 3 s, and a
3-wave rollout to all of them run to ``completed``: the line is ``ok`` (nothing
lost, queues drained, every ``last_seq`` the last accepted seq, the backlog back
to 0 after the burst) and carries every figure B6 reports.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # the bench scripts import each other by name
    sys.path.insert(0, str(BENCH))

million = importlib.import_module("million")
open_stack = importlib.import_module("stack").open_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_b6_harness_runs_a_burst_and_a_rollout_at_small_size(
    server_db_url: str, amqp_url: str
) -> None:
    with open_stack(server_db_url, amqp_url, pin_cpus=False) as stack:
        try:
            line = await million.million(
                stack,
                devices=300,
                minutes=0.5,
                max_minutes=3,
                interval=2.0,
                waves=3,
                burst_window=3.0,
                burst_at=10.0,
                sample_every=1.0,
                connections=32,
            )
        finally:
            await stack.close()
    assert line["ok"], line.get("reason")
    assert line["lost"] == 0
    assert line["persisted"] >= line["accepted"] > 300
    assert line["burst_heartbeats"] == 30
    assert line["rollout"]["status"] == "completed"
    assert line["applied"] == 300
    assert {"api", "ingest", "scheduler", "generator"} <= line["rss_mib"].keys()
    assert {"ingest", "scheduler", "broker", "postgres"} <= line[
        "us_per_heartbeat"
    ].keys()
    assert line["generator_cpu_seconds"] > 0
    assert line["rollout_start_answered_s"] > 0
    assert line["cache_lookups"]["hit"] + line["cache_lookups"]["miss"] > 0
    assert 0 <= line["cache_hit_ratio"] <= 1
    waves = line["waves_timing"]
    assert [w["wave"] for w in waves] == [1, 2, 3]
    assert sum(w["told"] for w in waves) == 300
    # waves 2 and 3 start after their predecessor's gate
    assert all(w["gate_to_start_ms"] >= 0 for w in waves[1:])
