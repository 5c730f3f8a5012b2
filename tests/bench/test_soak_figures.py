"""B5's per-heartbeat CPU line: PostgreSQL's beside B1's (the arithmetic only; the
soak itself is run by ``bench/run --only B5``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # the bench scripts import each other by name
    sys.path.insert(0, str(BENCH))

per_heartbeat = importlib.import_module("soak").per_heartbeat

CPU = {"ingest:batched": 2.0, "postgres": 3.0, "postgres_backends": 1.5}


def test_per_heartbeat_beside_b1() -> None:
    line = per_heartbeat(CPU, 10_000, {"postgres": 15.0, "ingest": 70.0})
    assert line["us_per_heartbeat"] == {
        "ingest": 200.0,
        "postgres": 300.0,
        "postgres_backends": 150.0,
    }
    assert line["pg_us_per_heartbeat"] == 150.0
    assert line["b1_pg_us_per_heartbeat"] == 15.0
    assert line["pg_over_b1"] == 20.0  # like for like: backends + server processes


def test_without_b1_or_heartbeats() -> None:
    line = per_heartbeat(CPU, 10_000, None)
    assert line["b1_pg_us_per_heartbeat"] is None
    assert line["pg_over_b1"] is None
    assert per_heartbeat(CPU, 0, None) == {"us_per_heartbeat": None}
