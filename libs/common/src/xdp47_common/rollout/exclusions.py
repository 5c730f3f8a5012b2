"""Eligibility: why a device of the tenant is not part of a rollout's waves.

The plan preview lists every excluded device with one ``Exclusion``; the first
reason that applies wins, in the order of the enum. Planning (the set the waves are
cut from) leaves out devices with a ``PLANNING_EXCLUSIONS`` reason. ``offline`` is
different: an offline device stays planned, so the plan does not change with
connectivity and retry can reach it, and is skipped at its wave's start under
``skip_offline`` (never waited for). The preview reports it as excluded because
starting now would skip it. ``incompatible`` devices (properties outside the
artifact's declared compatibility) are never planned, whatever the selector
says. In SQL the same rules are ``d.channel = $channel``, the selector and
compatibility fragments of ``adapters.selector_sql`` and "no active
rollout_targets row of another rollout"; ``offline`` means the device status is
not ``online``.

``classify_device`` is the pure reference of the preview's SQL classification
(``adapters.plan_preview``): no production code calls it; unit tests pin the
order of the reasons with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from uuid import UUID

from xdp47_common.selectors import Selector

__all__ = ["PLANNING_EXCLUSIONS", "Exclusion", "classify_device"]


class Exclusion(StrEnum):
    WRONG_CHANNEL = "wrong_channel"
    LABEL_MISMATCH = "label_mismatch"
    INCOMPATIBLE = "incompatible"
    IN_ANOTHER_ROLLOUT = "in_another_rollout"
    OFFLINE = "offline"


PLANNING_EXCLUSIONS: frozenset[Exclusion] = frozenset(
    {
        Exclusion.WRONG_CHANNEL,
        Exclusion.LABEL_MISMATCH,
        Exclusion.INCOMPATIBLE,
        Exclusion.IN_ANOTHER_ROLLOUT,
    }
)


def classify_device(
    *,
    rollout_id: UUID,
    channel: str,
    selector: Selector,
    device_channel: str,
    device_labels: Mapping[str, str],
    compatibility: Selector = Selector(),
    device_properties: Mapping[str, str] | None = None,
    device_online: bool,
    active_rollout_id: UUID | None,
    skip_offline: bool,
) -> Exclusion | None:
    """Return why a device of the rollout's tenant is excluded, or None if it is in.

    Args:
        rollout_id: The rollout being planned.
        channel: The rollout's channel.
        selector: The rollout's label selector (and its group's, if dynamic).
        device_channel: The device's channel.
        device_labels: The device's labels.
        compatibility: The artifact's compatibility as a selector
            (``compat.compatibility_selector``).
        device_properties: The properties the device reported.
        device_online: Whether the device status is ``online``.
        active_rollout_id: The running rollout the device is a target of, if any.
        skip_offline: The effective ``skip_offline``.

    Returns:
        The first exclusion that applies, or None.
    """
    if device_channel != channel:
        return Exclusion.WRONG_CHANNEL
    if not selector.matches(device_labels):
        return Exclusion.LABEL_MISMATCH
    if not compatibility.matches(device_properties or {}):
        return Exclusion.INCOMPATIBLE
    if active_rollout_id is not None and active_rollout_id != rollout_id:
        return Exclusion.IN_ANOTHER_ROLLOUT
    if skip_offline and not device_online:
        return Exclusion.OFFLINE
    return None
