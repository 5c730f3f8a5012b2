"""Two ingest and two scheduler processes on one broker and one database: the
work splits between them, and nothing is lost or applied twice (every accepted
heartbeat committed exactly once, each wave started once, each device's outcome
recorded once, the rollout completed as a single-process run ends it)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # the bench scripts import each other by name
    sys.path.insert(0, str(BENCH))

scaleout = importlib.import_module("scaleout")
open_stack = importlib.import_module("stack").open_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_two_ingests_and_two_schedulers_split_the_work_exactly_once(
    server_db_url: str, amqp_url: str
) -> None:
    with open_stack(server_db_url, amqp_url, pin_cpus=False) as stack:
        try:
            line = await scaleout.scale_out(
                stack, devices=300, interval=1.0, seconds=45, waves=3
            )
        finally:
            await stack.close()
    assert line["ok"], line.get("reason")
    assert line["persisted"] == line["accepted"] > 300
    assert line["rollout"]["status"] == "completed"
    assert line["applied"] == 300
    # Both processes of each service took part.
    for share in ("ingest_heartbeat_share", "scheduler_heartbeat_share"):
        assert set(line[share]) == {"a", "b"}
        assert all(v > 0 for v in line[share].values()), line[share]
