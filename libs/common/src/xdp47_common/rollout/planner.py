"""Wave planning: which device goes into which wave, as a rule SQL can apply.

The plan is fully determined by the rollout id and the set of eligible device ids.
Devices are ranked by a stable hash key (``ordering_key``, tie-broken by the device
id) that PostgreSQL computes identically with its built-in ``md5()``
(``SQL_ORDERING_KEY``); the rank ``r`` (1-based) falls into the first wave whose
cumulative bound is ``>= r`` (``wave_bounds``, ``wave_of_rank``).

Production planning is SQL (``xdp47_common.adapters.planning``): it counts the
candidates, takes the bounds from ``wave_bounds`` and stores the rank key of each
wave's first device, so a wave holds the candidates whose key falls in its range.
``plan_waves`` is the rule's pure reference: no production code calls it; it is the
oracle the property tests (``tests/unit/rollout/test_properties.py``) and the SQL
comparison (``tests/integration/scheduler/test_planning_sql.py``) hold the SQL to.
It lives here, beside the rule it states, rather than in the tests, so the rule
and its reference change together.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from itertools import pairwise
from uuid import UUID

__all__ = [
    "SQL_ORDERING_KEY",
    "ordering_key",
    "plan_waves",
    "wave_bounds",
    "wave_of_rank",
    "wave_sizes",
]

# The ranking rule, in SQL: $1 is the rollout id, d.id the device id. ``uuid::text``
# is the lowercase, hyphenated form, exactly ``str(UUID)``; device ids are ASCII, so
# md5 hashes the same bytes as Python.
SQL_ORDERING_KEY = "md5($1::uuid::text || ':' || d.id)"


def ordering_key(rollout_id: UUID, device_id: str) -> str:
    """Return the stable ranking key of a device within a rollout.

    Args:
        rollout_id: The rollout.
        device_id: The device id (ASCII by ``DEVICE_ID_PATTERN``).

    Returns:
        ``md5(str(rollout_id) + ':' + device_id)`` as 32 lowercase hex digits, equal
        to PostgreSQL's ``SQL_ORDERING_KEY``.
    """
    return hashlib.md5(
        f"{rollout_id}:{device_id}".encode(), usedforsecurity=False
    ).hexdigest()


def _validate(n: int, waves: int, percentages: Sequence[int] | None) -> None:
    if n < 0:
        raise ValueError(f"device count must be >= 0, got {n}")
    if waves < 1:
        raise ValueError(f"waves must be >= 1, got {waves}")
    if percentages is None:
        return
    if len(percentages) != waves:
        raise ValueError(
            f"waves is {waves} but percentages lists {len(percentages)} waves"
        )
    if any(p < 0 for p in percentages):
        raise ValueError(f"percentages must be >= 0, got {list(percentages)}")
    if sum(percentages) != 100:
        raise ValueError(f"percentages must sum to 100, got {sum(percentages)}")


def wave_bounds(
    n: int, waves: int, percentages: Sequence[int] | None = None
) -> list[int]:
    """Return the cumulative upper bound of each wave; the last bound is ``n``.

    Even split (``percentages`` is None): sizes differ by at most one, the larger
    waves first (``n % waves`` waves get ``n // waves + 1`` devices).

    Percentages: the raw bound of wave ``i`` is ``floor(n * C_i / 100)`` with ``C_i``
    the cumulative percentage, so sizes sum to ``n`` and each differs from its exact
    share ``n * p_i / 100`` by less than one. Small fleets are then corrected so that
    no wave with a non-zero share is left empty when it can be helped, walking the
    waves in order with ``prev`` the previous bound:

    * a zero-share wave gets nothing: ``bound_i = prev``;
    * otherwise ``bound_i = min(max(raw_i, prev + 1), cap_i)`` where ``cap_i`` is
      ``n - (non-zero waves after i)`` when ``n >= `` the number of non-zero waves
      (every such wave gets at least one device) and otherwise
      ``min(n, non-zero waves up to i)``: the first ``n`` non-zero waves get one
      device each, later ones none.

    When every non-zero share is worth at least one device (``n * p_i >= 100``) the
    correction never applies.

    Args:
        n: Number of eligible devices.
        waves: Number of waves (>= 1).
        percentages: Optional share of each wave in percent (>= 0, summing to 100,
            one per wave).

    Returns:
        ``waves`` non-decreasing bounds ending in ``n``.

    Raises:
        ValueError: When an argument breaks the rules above.
    """
    _validate(n, waves, percentages)
    if percentages is None:
        base, extra = divmod(n, waves)
        bounds, total = [], 0
        for i in range(waves):
            total += base + (1 if i < extra else 0)
            bounds.append(total)
        return bounds
    non_zero_after = [
        sum(1 for p in percentages[i + 1 :] if p > 0) for i in range(waves)
    ]
    reserve = n >= sum(1 for p in percentages if p > 0)
    bounds, prev, cumulative, non_zero_so_far = [], 0, 0, 0
    for i, share in enumerate(percentages):
        cumulative += share
        if share == 0:
            bound = prev
        else:
            non_zero_so_far += 1
            raw = n * cumulative // 100
            cap = n - non_zero_after[i] if reserve else min(n, non_zero_so_far)
            bound = min(max(raw, prev + 1), cap)
        bounds.append(bound)
        prev = bound
    return bounds


def wave_sizes(
    n: int, waves: int, percentages: Sequence[int] | None = None
) -> list[int]:
    """Return the number of devices of each wave (see ``wave_bounds`` for the rule).

    Raises:
        ValueError: When an argument is out of range.
    """
    bounds = wave_bounds(n, waves, percentages)
    return [b - a for a, b in pairwise([0, *bounds])]


def wave_of_rank(rank: int, bounds: Sequence[int]) -> int:
    """Return the 1-based wave of the device ranked ``rank`` (1-based).

    Raises:
        ValueError: When the rank is outside ``1..bounds[-1]``.
    """
    if not bounds or not 1 <= rank <= bounds[-1]:
        raise ValueError(
            f"rank {rank} is outside the plan of {bounds[-1] if bounds else 0}"
        )
    return bisect.bisect_left(bounds, rank) + 1


def plan_waves(
    rollout_id: UUID,
    device_ids: Iterable[str],
    waves: int,
    percentages: Sequence[int] | None = None,
) -> list[list[str]]:
    """Split the eligible devices into waves: the pure reference of the SQL rule.

    Duplicate ids count once. Each wave lists its devices in rank order.

    Args:
        rollout_id: The rollout; it seeds the ordering, so rollouts differ.
        device_ids: The eligible devices, in any order.
        waves: Number of waves (>= 1).
        percentages: Optional share of each wave (see ``wave_bounds``).

    Returns:
        ``waves`` lists of device ids; every device is in exactly one.

    Raises:
        ValueError: When ``waves`` or ``percentages`` is invalid.
    """
    ranked = sorted(set(device_ids), key=lambda d: (ordering_key(rollout_id, d), d))
    bounds = wave_bounds(len(ranked), waves, percentages)
    return [ranked[a:b] for a, b in pairwise([0, *bounds])]
