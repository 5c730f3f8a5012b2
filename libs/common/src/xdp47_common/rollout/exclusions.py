"""Eligibility: why a device of the tenant is not part of a rollout's waves.

The plan preview lists every excluded device with one ``Exclusion``; the first
reason that applies wins, in the order of the enum. Planning (the set the waves are
cut from) leaves out devices with a ``PLANNING_EXCLUSIONS`` reason. ``offline`` is
different: an offline device stays planned, so the plan does not change with
connectivity and retry can reach it, and is skipped at its wave's start under
``skip_offline`` (never waited for). The preview reports it as excluded because
starting now would skip it. In SQL the same rules are ``d.channel = $channel``,
``d.labels @> $selector::jsonb`` and "no active rollout_targets row of another
rollout"; ``offline`` means the device status is not ``online``.

``classify_device`` is the pure reference of the preview's SQL classification
(``adapters.plan_preview``): no production code calls it; unit tests pin the
order of the reasons with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from uuid import UUID

__all__ = ["PLANNING_EXCLUSIONS", "Exclusion", "classify_device", "matches_selector"]


class Exclusion(StrEnum):
    WRONG_CHANNEL = "wrong_channel"
    LABEL_MISMATCH = "label_mismatch"
    IN_ANOTHER_ROLLOUT = "in_another_rollout"
    OFFLINE = "offline"


PLANNING_EXCLUSIONS: frozenset[Exclusion] = frozenset(
    {Exclusion.WRONG_CHANNEL, Exclusion.LABEL_MISMATCH, Exclusion.IN_ANOTHER_ROLLOUT}
)


def matches_selector(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Tell whether every ``key=value`` pair of the selector is among the labels."""
    return all(labels.get(key) == value for key, value in selector.items())


def classify_device(
    *,
    rollout_id: UUID,
    channel: str,
    selector: Mapping[str, str],
    device_channel: str,
    device_labels: Mapping[str, str],
    device_online: bool,
    active_rollout_id: UUID | None,
    skip_offline: bool,
) -> Exclusion | None:
    """Return why a device of the rollout's tenant is excluded, or None if it is in.

    Args:
        rollout_id: The rollout being planned.
        channel: The rollout's channel.
        selector: The rollout's label selector.
        device_channel: The device's channel.
        device_labels: The device's labels.
        device_online: Whether the device status is ``online``.
        active_rollout_id: The running rollout the device is a target of, if any.
        skip_offline: The effective ``skip_offline``.

    Returns:
        The first exclusion that applies, or None.
    """
    if device_channel != channel:
        return Exclusion.WRONG_CHANNEL
    if not matches_selector(device_labels, selector):
        return Exclusion.LABEL_MISMATCH
    if active_rollout_id is not None and active_rollout_id != rollout_id:
        return Exclusion.IN_ANOTHER_ROLLOUT
    if skip_offline and not device_online:
        return Exclusion.OFFLINE
    return None
