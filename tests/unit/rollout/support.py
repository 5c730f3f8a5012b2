"""Shared builders for the pure rollout core tests (plain helpers, no fixtures)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from xdp47_common.rollout import EffectivePolicy

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
RID = UUID("6f1c1a52-3b0e-4a55-9d0e-2f8a4c7b9e01")


def make_policy(**overrides: object) -> EffectivePolicy:
    base: dict[str, object] = {
        "require_ok": True,
        "skip_offline": True,
        "grace_seconds": 0.0,
        "min_success_ratio": 1.0,
        "max_failures_per_wave": 0,
        "abort_on_zero_eligible": False,
        "wave_deadline_seconds": 900.0,
    }
    base.update(overrides)
    return EffectivePolicy.model_validate(base)
