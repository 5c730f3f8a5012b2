"""``prepare_heap_for_serving``: the collector set up for a serving process.

Run in a child interpreter: freezing the test process's own heap would change
every test after it."""

from __future__ import annotations

import json
import subprocess
import sys

from xdp47_common.cli import YOUNG_GENERATION_THRESHOLD

_CHILD = """
import gc, json
from xdp47_common.cli import prepare_heap_for_serving
before = gc.get_threshold()
kept = [[i] for i in range(1000)]  # built before serving: frozen with the rest
prepare_heap_for_serving()
cycle = []
cycle.append(cycle)  # made while serving: still the collector's to free
del cycle
print(json.dumps({
    "before": before,
    "after": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "collected": gc.collect(),
}))
"""


def _run() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_young_generation_threshold_raised_and_older_ones_kept() -> None:
    result = _run()
    before, after = result["before"], result["after"]
    assert isinstance(before, list)
    assert isinstance(after, list)
    assert after == [YOUNG_GENERATION_THRESHOLD, *before[1:]]
    assert before[0] < YOUNG_GENERATION_THRESHOLD


def test_startup_heap_frozen_and_later_cycles_still_collected() -> None:
    result = _run()
    frozen = result["frozen"]
    assert isinstance(frozen, int)
    assert frozen > 1000
    assert result["collected"] == 1
