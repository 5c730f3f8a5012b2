"""Effective policy resolution and device eligibility."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from tests.unit.rollout.support import RID, make_policy
from xdp47_common.compat import compatibility_selector
from xdp47_common.models.policy import PolicyFields
from xdp47_common.rollout import (
    PLANNING_EXCLUSIONS,
    EffectivePolicy,
    Exclusion,
    classify_device,
)
from xdp47_common.selectors import parse_selector


def test_resolve_without_policy_is_the_defaults():
    defaults = make_policy()
    assert EffectivePolicy.resolve(None, defaults) is defaults


def test_policy_fields_override_and_null_keeps_default():
    defaults = make_policy(grace_seconds=30.0)
    fields = PolicyFields(max_failures_per_wave=2, skip_offline=False)
    resolved = EffectivePolicy.resolve(fields, defaults)
    assert resolved.max_failures_per_wave == 2
    assert resolved.skip_offline is False
    assert resolved.grace_seconds == 30.0
    assert resolved.min_success_ratio == 1.0


def test_mapping_overrides_ignore_unknown_keys():
    record = {"id": "x", "min_success_ratio": 0.5, "require_ok": None}
    resolved = EffectivePolicy.resolve(record, make_policy())
    assert resolved.min_success_ratio == 0.5
    assert resolved.require_ok is True


def test_out_of_range_override_is_rejected():
    with pytest.raises(ValidationError, match="min_success_ratio"):
        EffectivePolicy.resolve({"min_success_ratio": 1.5}, make_policy())


def test_effective_policy_round_trips_through_json():
    policy = make_policy(grace_seconds=12.5)
    assert EffectivePolicy.model_validate_json(policy.model_dump_json()) == policy


def _classify(**changes):
    args: dict[str, Any] = {
        "rollout_id": RID,
        "channel": "stable",
        "selector": parse_selector("region=eu"),
        "device_channel": "stable",
        "device_labels": {"region": "eu"},
        "device_online": True,
        "active_rollout_id": None,
        "skip_offline": True,
    }
    args.update(changes)
    return classify_device(**args)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, None),
        ({"active_rollout_id": RID}, None),
        ({"device_online": False, "skip_offline": False}, None),
        ({"device_online": False}, Exclusion.OFFLINE),
        ({"active_rollout_id": UUID(int=7)}, Exclusion.IN_ANOTHER_ROLLOUT),
        ({"device_labels": {"region": "us"}}, Exclusion.LABEL_MISMATCH),
        ({"device_channel": "beta"}, Exclusion.WRONG_CHANNEL),
        (
            {"compatibility": compatibility_selector({"arch": ["arm64"]})},
            Exclusion.INCOMPATIBLE,
        ),
        (
            {
                "compatibility": compatibility_selector({"arch": ["arm64"]}),
                "device_properties": {"arch": "arm64"},
            },
            None,
        ),
        # Whatever the selector says: a selector that matches an x86 device
        # does not make it compatible with an arm64 artifact.
        (
            {
                "selector": parse_selector("region in (eu,us)"),
                "compatibility": compatibility_selector({"arch": ["arm64"]}),
                "device_properties": {"arch": "x86_64"},
            },
            Exclusion.INCOMPATIBLE,
        ),
        # The first reason in enum order wins.
        (
            {"device_channel": "beta", "device_labels": {}, "device_online": False},
            Exclusion.WRONG_CHANNEL,
        ),
    ],
)
def test_classify_device(changes, expected):
    assert _classify(**changes) == expected


def test_offline_devices_stay_planned():
    assert Exclusion.OFFLINE not in PLANNING_EXCLUSIONS
    assert set(Exclusion) - PLANNING_EXCLUSIONS == {Exclusion.OFFLINE}
