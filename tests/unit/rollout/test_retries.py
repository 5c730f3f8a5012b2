"""Per-device retries in the pure core: the backoff, which failures are retried,
the retry bound and the wave deadline (``xdp47_common.rollout.retries``)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.rollout.support import T0, make_policy
from xdp47_common.models import FailureCode
from xdp47_common.rollout.policy import EffectivePolicy
from xdp47_common.rollout.retries import NOT_RETRIED, after_failure, retry_delay

RETRYING = make_policy(
    max_device_retries=3, retry_backoff_seconds=30, retry_backoff_max_seconds=100
)
DEADLINE = T0 + timedelta(hours=1)


def test_the_backoff_doubles_per_failed_try_up_to_the_cap() -> None:
    assert [retry_delay(n, RETRYING) for n in range(1, 6)] == [30, 60, 100, 100, 100]


def test_a_huge_try_number_waits_the_cap_instead_of_overflowing() -> None:
    assert retry_delay(10_000, RETRYING) == 100


def test_a_zero_backoff_retries_at_once() -> None:
    policy = make_policy(max_device_retries=1, retry_backoff_seconds=0)
    decision = after_failure("download_failed", 1, policy, T0, DEADLINE)
    assert decision.retry_at == T0


def test_a_retryable_failure_is_retried_after_the_backoff() -> None:
    first = after_failure("download_failed", 1, RETRYING, T0, DEADLINE)
    assert first.retry
    assert first.retry_at == T0 + timedelta(seconds=30)
    assert first.why_final is None
    second = after_failure("apply_failed", 2, RETRYING, T0, DEADLINE)
    assert second.retry_at == T0 + timedelta(seconds=60)


def test_the_last_try_fails_for_good() -> None:
    assert after_failure("download_failed", 3, RETRYING, T0, DEADLINE).retry
    last = after_failure("download_failed", 4, RETRYING, T0, DEADLINE)
    assert not last.retry
    assert last.why_final == "no retry left (max_device_retries 3)"


@pytest.mark.parametrize(
    "code",
    [
        FailureCode.SHA256_MISMATCH,
        FailureCode.SIGNATURE_INVALID,
        FailureCode.INCOMPATIBLE,
        FailureCode.DOWNGRADE,  # the agent refuses it again, unless a rollback asks
    ],
)
def test_bytes_that_cannot_pass_are_never_retried(code: str) -> None:
    decision = after_failure(code, 1, RETRYING, T0, DEADLINE)
    assert not decision.retry
    assert decision.why_final is not None
    assert "cannot pass" in decision.why_final


@pytest.mark.parametrize(
    "code",
    [
        FailureCode.DOWNLOAD_FAILED,
        FailureCode.SIZE_MISMATCH,  # a truncated transfer is reported as one
        FailureCode.DISK_FULL,
        FailureCode.STATE_DIR_READ_ONLY,
        FailureCode.APPLY_FAILED,
        "a_code_of_a_newer_agent",
    ],
)
def test_other_failures_are_retried(code: str) -> None:
    assert code not in NOT_RETRIED
    assert after_failure(code, 1, RETRYING, T0, DEADLINE).retry


def test_no_retries_by_default_for_a_policy_kept_before_the_fields() -> None:
    old = EffectivePolicy.model_validate(
        {
            "require_ok": True,
            "skip_offline": True,
            "grace_seconds": 0,
            "min_success_ratio": 1.0,
            "max_failures_per_wave": 0,
            "abort_on_zero_eligible": True,
            "wave_deadline_seconds": 900,
        }
    )
    assert old.max_device_retries == 0
    assert not after_failure("download_failed", 1, old, T0, DEADLINE).retry


def test_a_retry_that_would_start_after_the_deadline_fails_now() -> None:
    """The wave would time the device out before its next try: it fails at once
    with the failure it reported, which says more than timed_out."""
    deadline = T0 + timedelta(seconds=45)
    assert after_failure("download_failed", 1, RETRYING, T0, deadline).retry
    late = after_failure("download_failed", 2, RETRYING, T0, deadline)
    assert not late.retry
    assert late.why_final == "no retry before the wave deadline"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="device_attempt"):
        after_failure("download_failed", 0, RETRYING, T0, DEADLINE)
    with pytest.raises(ValueError, match="failed_try"):
        retry_delay(0, RETRYING)
    with pytest.raises(ValueError, match="aware"):
        after_failure(
            "download_failed",
            1,
            RETRYING,
            datetime(2025, 1, 1),  # noqa: DTZ001
            DEADLINE,
        )


@given(
    tries=st.integers(min_value=0, max_value=10),
    base=st.integers(min_value=0, max_value=600),
    extra=st.integers(min_value=0, max_value=3600),
    code=st.sampled_from(["download_failed", "apply_failed", "sha256_mismatch"]),
)
def test_a_device_gets_at_most_max_retries_tries_and_waits_more_each_time(
    tries: int, base: int, extra: int, code: str
) -> None:
    """Following the decisions from the first try: the number of tries is
    1 + max_device_retries (1 for a failure that cannot pass), every wait is
    within the cap and never shorter than the one before."""
    policy = make_policy(
        max_device_retries=tries,
        retry_backoff_seconds=base,
        retry_backoff_max_seconds=max(base + extra, 1),
        wave_deadline_seconds=10**7,
    )
    now, attempt, waits = T0, 1, []
    far = T0 + timedelta(days=365)
    while (decision := after_failure(code, attempt, policy, now, far)).retry:
        assert decision.retry_at is not None
        waits.append((decision.retry_at - now).total_seconds())
        now, attempt = decision.retry_at, attempt + 1
    assert attempt == (1 if code in NOT_RETRIED else tries + 1)
    assert waits == sorted(waits)
    assert all(0 <= w <= policy.retry_backoff_max_seconds for w in waits)


def test_a_policy_whose_longest_wait_is_below_its_first_is_refused() -> None:
    from pydantic import ValidationError

    from xdp47_common.models import PolicyFields

    with pytest.raises(ValidationError) as err:
        PolicyFields.model_validate(
            {"retry_backoff_seconds": 60, "retry_backoff_max_seconds": 30}
        )
    (error,) = err.value.errors()
    assert error["loc"] == ("retry_backoff_max_seconds",)
    assert "at least retry_backoff_seconds (60)" in error["msg"]
    ok = PolicyFields.model_validate(
        {"max_device_retries": 2, "retry_backoff_seconds": 5}
    )
    assert ok.retry_backoff_max_seconds is None
