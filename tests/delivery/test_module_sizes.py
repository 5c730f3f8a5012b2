"""Production modules stay small enough to read in one sitting.

The production code is every module under ``services/*/src``, ``libs/common/src``
and ``tools/*/src``. Its size by lines: the 90th percentile (nearest rank) at
most 250, and no module above 400 (CONTRIBUTING.md, "Small modules"). A module
that outgrows them is split along a real seam, not trimmed line by line.
"""

from __future__ import annotations

import math
from pathlib import Path

from tests.delivery.support import ROOT

P90_MAX = 250
MODULE_MAX = 400


def _sizes() -> dict[Path, int]:
    roots = [*ROOT.glob("services/*/src"), ROOT / "libs/common/src"]
    roots += ROOT.glob("tools/*/src")
    return {
        path: len(path.read_text().splitlines())
        for root in roots
        for path in root.rglob("*.py")
    }


def test_no_production_module_is_above_the_limit() -> None:
    sizes = _sizes()
    assert len(sizes) > 100, "the production modules were not found"
    too_big = {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > MODULE_MAX}
    assert not too_big, f"modules above {MODULE_MAX} lines: {too_big}"


def test_the_90th_percentile_of_module_sizes_is_small() -> None:
    ordered = sorted(_sizes().values())
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
    assert p90 <= P90_MAX, f"p90 of {len(ordered)} modules is {p90} lines"
