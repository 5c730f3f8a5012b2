"""Wave sizes, bounds and the ordering rule shared with SQL."""

from __future__ import annotations

import hashlib
import re
from uuid import UUID

import pytest

from tests.unit.rollout.support import RID
from xdp47_common.rollout import (
    SQL_ORDERING_KEY,
    ordering_key,
    plan_waves,
    wave_bounds,
    wave_of_rank,
    wave_sizes,
)


@pytest.mark.parametrize(
    ("n", "waves", "expected"),
    [
        (10, 3, [4, 3, 3]),
        (11, 3, [4, 4, 3]),
        (9, 3, [3, 3, 3]),
        (2, 3, [1, 1, 0]),
        (0, 2, [0, 0]),
        (5, 1, [5]),
    ],
)
def test_even_split_puts_larger_waves_first(n, waves, expected):
    assert wave_sizes(n, waves, None) == expected


@pytest.mark.parametrize(
    ("n", "percentages", "expected"),
    [
        (100, [10, 30, 60], [10, 30, 60]),
        (10, [10, 90], [1, 9]),
        (7, [50, 50], [3, 4]),  # cumulative floor: 3, then 7
        (5, [10, 90], [1, 4]),  # raw bound 0 is raised to 1
        (3, [1, 1, 98], [1, 1, 1]),  # every non-zero wave gets one
        (2, [1, 1, 98], [1, 1, 0]),  # fewer devices than waves: first ones
        (10, [0, 100], [0, 10]),
        (10, [100, 0], [10, 0]),
        (4, [1, 0, 1, 98], [1, 0, 1, 2]),
        (0, [50, 50], [0, 0]),
    ],
)
def test_percentage_split(n, percentages, expected):
    assert wave_sizes(n, len(percentages), percentages) == expected
    assert sum(expected) == n


def test_bounds_are_cumulative_sizes():
    assert wave_bounds(10, 3) == [4, 7, 10]
    assert wave_bounds(10, 2, [10, 90]) == [1, 10]


@pytest.mark.parametrize(
    ("n", "waves", "percentages", "message"),
    [
        (-1, 1, None, "device count"),
        (1, 0, None, "waves must be"),
        (1, 2, [100], "lists 1 waves"),
        (1, 2, [-10, 110], ">= 0"),
        (1, 2, [50, 40], "sum to 100"),
    ],
)
def test_invalid_arguments_name_the_problem(n, waves, percentages, message):
    with pytest.raises(ValueError, match=message):
        wave_sizes(n, waves, percentages)


def test_wave_of_rank_uses_first_bound_at_or_above_rank():
    bounds = [4, 4, 7, 10]
    assert [wave_of_rank(r, bounds) for r in range(1, 11)] == [1] * 4 + [3] * 3 + [
        4
    ] * 3
    for rank in (0, 11):
        with pytest.raises(ValueError, match="outside"):
            wave_of_rank(rank, bounds)
    with pytest.raises(ValueError, match="outside"):
        wave_of_rank(1, [])


def _eval_sql_key(rollout_id: UUID, device_id: str) -> str:
    """Interpret SQL_ORDERING_KEY: md5 over the ``||`` concatenation of its parts."""
    match = re.fullmatch(r"md5\((.*)\)", SQL_ORDERING_KEY)
    assert match is not None
    parts = []
    for term in (t.strip() for t in match.group(1).split("||")):
        if term == "$1::uuid::text":
            parts.append(str(rollout_id))  # PostgreSQL's uuid::text is str(UUID)
        elif term == "d.id":
            parts.append(device_id)
        else:
            literal = re.fullmatch(r"'([^']*)'", term)
            assert literal is not None, term
            parts.append(literal.group(1))
    return hashlib.md5("".join(parts).encode()).hexdigest()


@pytest.mark.parametrize(
    ("rollout_id", "device_id", "expected"),
    [
        # Expected values computed by PostgreSQL 15 with the SQL_ORDERING_KEY formula.
        (RID, "dev-001", "ca26aad8278dd8b508f28dfc018fcda2"),
        (UUID(int=0), "A", "388ca0bfae3098878af02fa31e9c2976"),
        (
            UUID("6F1C1A52-3B0E-4A55-9D0E-2F8A4C7B9E01"),
            "edge_42-x",
            "e8bfe5104f9b60d985693c5337bfc948",
        ),
    ],
)
def test_python_key_matches_the_documented_sql(rollout_id, device_id, expected):
    assert ordering_key(rollout_id, device_id) == expected
    assert _eval_sql_key(rollout_id, device_id) == expected


def test_plan_matches_the_waves_postgresql_computed():
    """Reference plan of ten devices; PostgreSQL ranked them identically with
    row_number() over (SQL_ORDERING_KEY, id) COLLATE "C" on bounds {4,7,10}."""
    devices = ["a", "B", "c", "x1", "x2", "x3", "x4", "x5", "x6", "x7"]
    assert plan_waves(RID, reversed(devices), 3) == [
        ["x1", "x6", "x7", "x2"],
        ["x5", "c", "B"],
        ["a", "x3", "x4"],
    ]


def test_duplicates_count_once_and_rollouts_shuffle_differently():
    devices = [f"d{i}" for i in range(50)]
    plan = plan_waves(RID, devices + devices[:10], 5)
    assert sorted(d for wave in plan for d in wave) == sorted(devices)
    assert plan != plan_waves(UUID(int=1), devices, 5)
