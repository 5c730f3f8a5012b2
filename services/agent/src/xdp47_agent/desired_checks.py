"""Checks an agent makes on a desired state before acting on it, the wait the
server asks for before a retry, and the per-artifact backoff after a failed apply
when the server directs no retries: pure functions of their arguments.

Two retry regimes: when the desired state names the device's try
(``device_attempt``, per-device retries of a running rollout), the server
directs them: the agent makes each try once, not before its ``retry_after``,
and reports its outcome with the try's number; the scheduler counts the failure
and grants the next try (or ends it). Otherwise (a kept desired state, a server
that predates the field) the agent backs off on its own
(``XDP47_APPLY_BACKOFF`` doubling up to ``XDP47_APPLY_BACKOFF_MAX``).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import NamedTuple
from uuid import UUID

from xdp47_agent.applied import Applied
from xdp47_agent.wire import DesiredState

__all__ = [
    "ArtifactBackoff",
    "TryKey",
    "downgrade_reason",
    "issued_at",
    "retry_wait",
    "stale_reason",
    "valid_version",
]


class TryKey(NamedTuple):
    """One try the server asked for: the rollout, its attempt, the device's try
    within it (``device_attempt``) and the artifact. The agent makes each once:
    after a failed try, the next one is the server's to grant (a new
    ``device_attempt``), so the agent never spends a try the server did not
    count."""

    rollout_id: UUID | None
    attempt: int | None
    device_attempt: int
    artifact_id: UUID | None

    @classmethod
    def of(cls, desired: DesiredState) -> TryKey | None:
        """The try ``desired`` asks for; None when it names none (a kept desired
        state, or a server that predates per-device retries)."""
        if desired.device_attempt is None:
            return None
        return cls(
            desired.rollout_id,
            desired.attempt,
            desired.device_attempt,
            desired.artifact_id,
        )


def retry_wait(desired: DesiredState, now: datetime) -> float:
    """Seconds to wait before the try ``desired`` asks for (0: go now).

    ``retry_after`` and ``server_time`` are both the server's clock, so their
    difference is the wait whatever the device's clock says; ``now`` (the
    device's clock) stands in only for an answer without ``server_time``.
    """
    after = issued_at(desired.retry_after)
    if after is None:
        return 0.0
    reference = issued_at(desired.server_time) or now
    return max(0.0, (after - reference).total_seconds())


class ArtifactBackoff(NamedTuple):
    """How often an artifact failed to apply, and when to try it again."""

    failures: int
    not_before: float

    @classmethod
    def after(
        cls,
        previous: ArtifactBackoff | None,
        *,
        base: float,
        cap: float,
        now: float,
        rng: random.Random,
    ) -> ArtifactBackoff:
        """The backoff after one more failure: ``base`` doubled per failure up to
        ``cap``, jittered by ±20% so a fleet does not retry in lockstep."""
        failures = (previous.failures if previous else 0) + 1
        delay = min(base * 2 ** (failures - 1), cap)
        return cls(failures, now + delay * rng.uniform(0.8, 1.2))


def valid_version(version: str) -> bool:
    return 0 < len(version) <= 128 and version.isprintable()


def issued_at(when: datetime | None) -> datetime | None:
    """``server_time`` as an aware datetime (a naive one is taken as UTC)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def stale_reason(desired: DesiredState, current: Applied | None) -> str | None:
    """Why ``desired`` is older than the state already applied, or None.

    The high-water mark is the ``server_time`` of the desired state the applied
    artifact came from. An update answer issued before it is a replay (an old
    answer served again), refused. A rollback by the operator is a new rollout
    of an older artifact: its answers are issued now, so they pass. Once a mark
    exists, an update without ``server_time`` cannot be ordered and is refused.
    """
    mark = current.desired_at if current is not None else None
    if mark is None:
        return None
    issued = issued_at(desired.server_time)
    if issued is None:
        return "update without server_time after a dated apply"
    if issued < mark:
        return "older than the applied desired state (replay)"
    return None


def downgrade_reason(desired: DesiredState, current: Applied | None) -> str | None:
    """Why ``desired`` is a downgrade the agent refuses, or None.

    A version lower than the applied one is refused unless the desired state is
    marked as a rollback (``rollback``: a rollback rollout asks for it). Versions
    are compared as PEP 440 versions (``packaging``: ``1.10.0`` > ``1.9.0``,
    ``2.0.0rc1`` < ``2.0.0``); when either does not parse as one (a free-form
    version text), they cannot be ordered and nothing is refused.
    """
    if desired.rollback or current is None or not desired.version:
        return None
    # Imported here: only an update over an applied version compares them.
    from packaging.version import InvalidVersion, Version

    try:
        wanted, running = Version(desired.version), Version(current.version)
    except InvalidVersion:
        return None
    if wanted >= running:
        return None
    return (
        f"version {desired.version} is lower than the applied {current.version} "
        "and the desired state is not a rollback"
    )
