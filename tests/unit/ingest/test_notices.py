"""``parse_notice``: the three forms of a ``NOTIFY xdp47_desired`` payload, and
anything else read as the widest (the whole tenant)."""

from __future__ import annotations

import uuid

import pytest

from xdp47_ingest.notices import WaveChange, parse_notice

ROLLOUT = uuid.UUID("6f1c2a9e-3b7d-4c58-9e21-0d4f5a6b7c8d")


def test_a_tenant_alone_is_the_whole_tenant() -> None:
    assert parse_notice("acme") == ("acme", None)


def test_a_wave_start_names_the_rollout_and_the_waves() -> None:
    assert parse_notice(f"acme {ROLLOUT} 1 2") == (
        "acme",
        WaveChange(ROLLOUT, 1, 2, late_only=False),
    )


def test_a_late_join_names_the_running_wave_and_late() -> None:
    assert parse_notice(f"acme {ROLLOUT} 2 3 late") == (
        "acme",
        WaveChange(ROLLOUT, 2, 3, late_only=True),
    )


@pytest.mark.parametrize(
    "rest",
    [
        f"{ROLLOUT} 1",
        f"{ROLLOUT} 1 2 3",
        f"{ROLLOUT} 1 two",
        "not-a-uuid 1 2",
        f"{ROLLOUT} 1 2 early",
        "late",
        f"{ROLLOUT} 1 late",
    ],
)
def test_anything_else_drops_the_whole_tenant(rest: str) -> None:
    assert parse_notice(f"acme {rest}") == ("acme", None)
