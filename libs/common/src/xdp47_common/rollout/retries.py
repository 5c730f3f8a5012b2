"""Per-device retries: whether a device's failed try is tried again, and when.

A device whose download, verification or apply fails is told to try again, up
to ``max_device_retries`` more times, each after an exponential backoff
(``retry_backoff_seconds`` doubled per failed try, capped at
``retry_backoff_max_seconds``); its target counts as failed only after the last
try, so a wave's gate never counts it as failed while it has tries left (the
target stays ``assigned``, which the gates count as pending).

Two kinds of failure are never retried:

- a failure that cannot get better (``NOT_RETRIED``): the bytes do not match
  the artifact's SHA256 or no trusted key verifies their signature (the same
  URI serves the same bytes), the artifact does not declare this device
  compatible, or it is a lower version than the device runs and the desired
  state is not a rollback's (asking again cannot change the answer);
- a retry that could not start before the wave's deadline: the wave would time
  the device out first, so it fails at once with the failure it reported,
  which says more than ``timed_out``.

Two attempt numbers exist, and they are distinct: the rollout's ``attempt`` (1,
then one more per operator retry of the whole rollout, which re-plans failed and
skipped devices) and the target's ``device_attempt`` (1, then one more per
automatic per-device retry within one rollout attempt; a rollout retry starts
it at 1 again).

The scheduler applies this rule to many devices in one SQL statement
(``xdp47_scheduler.pg.progress``); ``tests/integration/scheduler/
test_device_retries_sql.py`` holds that statement to ``after_failure``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from xdp47_common.models.reasons import FailureCode
from xdp47_common.rollout.policy import EffectivePolicy

__all__ = [
    "NOT_RETRIED",
    "RetryDecision",
    "after_failure",
    "retry_delay",
]

# Codes whose failure is final at once. Not size_mismatch: a connection cut
# mid-body is reported as one (truncated), and a second try may well pass; a
# size that is really wrong fails every try, which the retry bound limits.
NOT_RETRIED: frozenset[str] = frozenset(
    {
        FailureCode.SHA256_MISMATCH,
        FailureCode.SIGNATURE_INVALID,
        FailureCode.INCOMPATIBLE,
        FailureCode.DOWNGRADE,
    }
)


def retry_delay(failed_try: int, policy: EffectivePolicy) -> float:
    """Seconds to wait after the ``failed_try``-th try failed (1 = the first).

    ``retry_backoff_seconds`` doubled per failed try, capped at
    ``retry_backoff_max_seconds``: with 30 s and 300 s, 30, 60, 120, 240, 300, ...

    Raises:
        ValueError: When ``failed_try`` is below 1.
    """
    if failed_try < 1:
        raise ValueError(f"failed_try must be >= 1, got {failed_try}")
    base = policy.retry_backoff_seconds
    cap = policy.retry_backoff_max_seconds
    # Cap the exponent too: 2**1000 seconds is not a wait, it is an overflow.
    return float(min(base * 2 ** min(failed_try - 1, 30), cap))


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What follows a failed try: another try at ``retry_at``, or the end.

    ``why_final`` says why no retry follows (for the target's detail), None
    when one does.
    """

    retry_at: datetime | None
    why_final: str | None = None

    @property
    def retry(self) -> bool:
        return self.retry_at is not None


def after_failure(
    code: str,
    device_attempt: int,
    policy: EffectivePolicy,
    now: datetime,
    deadline: datetime,
) -> RetryDecision:
    """Decide what follows a device's failed try.

    Args:
        code: The failure code the device reported (``last_apply.code``).
        device_attempt: The try that failed (1 = the first).
        policy: The rollout's effective policy.
        now: When the failure was judged (aware).
        deadline: When the device's wave times it out (aware).

    Returns:
        A retry at ``now`` plus the backoff, or a final failure with its why.

    Raises:
        ValueError: When ``device_attempt`` is below 1 or a datetime is naive.
    """
    for name, value in (("now", now), ("deadline", deadline)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    if device_attempt < 1:
        raise ValueError(f"device_attempt must be >= 1, got {device_attempt}")
    if code in NOT_RETRIED:
        return RetryDecision(None, "not retried: it cannot pass on another try")
    if device_attempt > policy.max_device_retries:
        return RetryDecision(
            None, f"no retry left (max_device_retries {policy.max_device_retries})"
        )
    retry_at = now + timedelta(seconds=retry_delay(device_attempt, policy))
    if retry_at >= deadline:
        return RetryDecision(None, "no retry before the wave deadline")
    return RetryDecision(retry_at)
