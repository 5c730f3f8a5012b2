"""The pure rules of roll back: which rollouts accept it, the undone rollout's
own step, and when ``on_failure: rollback`` starts one by itself."""

from __future__ import annotations

import uuid

import pytest

from xdp47_common.rollout import (
    EffectivePolicy,
    OnFailure,
    RollbackRefused,
    RolloutKind,
    RolloutState,
    RolloutStatus,
    automatic_rollback_id,
    rollback,
    rollback_on_failure,
    rollback_refusal,
)

POLICY = EffectivePolicy(
    require_ok=True,
    skip_offline=True,
    grace_seconds=0,
    min_success_ratio=1.0,
    max_failures_per_wave=0,
    abort_on_zero_eligible=True,
    wave_deadline_seconds=600,
)
ACCEPTING = {
    RolloutStatus.RUNNING,
    RolloutStatus.FAILED,
    RolloutStatus.PARTIAL,
    RolloutStatus.COMPLETED,
}


def _state(status: RolloutStatus) -> RolloutState:
    in_wave = status is not RolloutStatus.DRAFT
    return RolloutState(
        id=uuid.uuid4(),
        status=status,
        waves=2,
        current_wave=1 if in_wave else None,
        attempt=1 if in_wave else 0,
    )


@pytest.mark.parametrize("status", list(RolloutStatus))
def test_which_statuses_accept_a_rollback(status: RolloutStatus) -> None:
    refusal = rollback_refusal(RolloutKind.ROLLOUT, status)
    if status in ACCEPTING:
        assert refusal is None
        rollback(_state(status), RolloutKind.ROLLOUT, by="op")
    else:
        assert refusal is not None
        assert status.value in refusal
        with pytest.raises(RollbackRefused, match="cannot roll back"):
            rollback(_state(status), RolloutKind.ROLLOUT, by="op")


@pytest.mark.parametrize("status", sorted(ACCEPTING))
def test_a_rollback_is_never_rolled_back(status: RolloutStatus) -> None:
    assert "cannot be rolled back" in (
        rollback_refusal(RolloutKind.ROLLBACK, status) or ""
    )
    with pytest.raises(RollbackRefused):
        rollback(_state(status), RolloutKind.ROLLBACK, by="op")


def test_a_running_rollout_is_aborted_first() -> None:
    decision = rollback(_state(RolloutStatus.RUNNING), RolloutKind.ROLLOUT, by="op")
    assert decision.status is RolloutStatus.ABORTED
    assert decision.reason == "aborted by op: rolled back"
    assert decision.finish_wave is not None
    assert decision.finish_wave.wave == 1


@pytest.mark.parametrize(
    "status", [RolloutStatus.FAILED, RolloutStatus.PARTIAL, RolloutStatus.COMPLETED]
)
def test_a_finished_rollout_keeps_its_status(status: RolloutStatus) -> None:
    decision = rollback(_state(status), RolloutKind.ROLLOUT, by="op")
    assert not decision.changed
    assert decision.status is status


def test_on_failure_defaults_to_stop_and_resolves_from_a_policy() -> None:
    assert POLICY.on_failure is OnFailure.STOP
    resolved = EffectivePolicy.resolve({"on_failure": "rollback"}, POLICY)
    assert resolved.on_failure is OnFailure.ROLLBACK
    # A policy kept before the field existed reads as what it did: stop.
    kept = POLICY.model_dump()
    del kept["on_failure"]
    assert EffectivePolicy.model_validate(kept).on_failure is OnFailure.STOP


@pytest.mark.parametrize("kind", list(RolloutKind))
@pytest.mark.parametrize("status", list(RolloutStatus))
@pytest.mark.parametrize("on_failure", list(OnFailure))
def test_on_failure_rolls_back_only_a_failed_rollout(
    kind: RolloutKind, status: RolloutStatus, on_failure: OnFailure
) -> None:
    policy = POLICY.model_copy(update={"on_failure": on_failure})
    expected = (
        kind is RolloutKind.ROLLOUT
        and status is RolloutStatus.FAILED
        and on_failure is OnFailure.ROLLBACK
    )
    assert rollback_on_failure(kind, status, policy) is expected


def test_the_automatic_rollback_id_is_one_per_attempt() -> None:
    rid = uuid.uuid4()
    assert automatic_rollback_id(rid, 1) == automatic_rollback_id(rid, 1)
    assert automatic_rollback_id(rid, 1) != automatic_rollback_id(rid, 2)
    assert automatic_rollback_id(rid, 1) != automatic_rollback_id(uuid.uuid4(), 1)
