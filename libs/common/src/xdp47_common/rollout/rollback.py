"""Roll back: which rollouts a rollback accepts, and when one starts by itself.

A rollback is a rollout of its own (kind ``rollback``, ``rollback_of`` the
rollout it undoes) whose targets are the devices that applied the undone
rollout's artifact and still run it, each sent back to the artifact it ran
before (its target's ``from``). The undone rollout itself only changes when it
is running: it is aborted first (``rollback``), so no device is told its
artifact any more. Devices that never applied it are left alone.

``rollback_on_failure`` is the policy's ``on_failure: rollback``: the scheduler
starts the rollback in the transaction that ends the rollout ``failed``, under
the id ``automatic_rollback_id`` gives (one per attempt), so it starts once.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from xdp47_common.rollout.commands import CommandName, abort, accepted_from
from xdp47_common.rollout.decision import (
    Decision,
    InvalidTransition,
    RolloutState,
    no_op,
)
from xdp47_common.rollout.policy import EffectivePolicy, OnFailure
from xdp47_common.rollout.status import RolloutKind, RolloutStatus

__all__ = [
    "RollbackRefused",
    "automatic_rollback_id",
    "rollback",
    "rollback_on_failure",
    "rollback_refusal",
]


class RollbackRefused(InvalidTransition):
    """A rollback the rollout does not accept (its status, or its kind)."""

    def __init__(self, status: RolloutStatus, reason: str) -> None:
        super().__init__(status, status, reason)
        self.args = (f"cannot roll back: {reason}",)


def rollback_refusal(kind: RolloutKind, status: RolloutStatus) -> str | None:
    """Why a rollout of this kind and status cannot be rolled back, or None."""
    if kind is RolloutKind.ROLLBACK:
        return (
            "a rollback cannot be rolled back; create a rollout of the release "
            "the devices should run"
        )
    # Every hold of a running rollout accepts it: the status decides.
    allowed = {p.status for p in accepted_from(CommandName.ROLLBACK)}
    if status not in allowed:
        return (
            f"a {status.value} rollout cannot be rolled back; rollback needs status "
            f"{' or '.join(sorted(s.value for s in allowed))}"
        )
    return None


def rollback(rollout: RolloutState, kind: RolloutKind, by: str) -> Decision:
    """The undone rollout's own step when a rollback of it starts.

    A running rollout is aborted (reason ``aborted by <by>: rolled back``): its
    devices not yet updated keep their version and none is told its artifact
    any more. A finished one keeps its status (a no-op decision); the rollback
    rollout itself is started by the scheduler in the same transaction.

    Raises:
        RollbackRefused: When ``rollback_refusal`` names a reason.
    """
    refusal = rollback_refusal(kind, rollout.status)
    if refusal is not None:
        raise RollbackRefused(rollout.status, refusal)
    if rollout.status is RolloutStatus.RUNNING:
        return abort(rollout, by=by, note="rolled back")
    return no_op(rollout, "rolled back")


def rollback_on_failure(
    kind: RolloutKind, status: RolloutStatus, policy: EffectivePolicy
) -> bool:
    """Whether a rollout that just moved to ``status`` starts its rollback by
    itself: it ended ``failed`` under ``on_failure: rollback`` and is not a
    rollback itself (that would send the devices forward again)."""
    return (
        kind is RolloutKind.ROLLOUT
        and status is RolloutStatus.FAILED
        and policy.on_failure is OnFailure.ROLLBACK
    )


def automatic_rollback_id(rollout_id: UUID, attempt: int) -> UUID:
    """The id of the rollback ``on_failure`` starts for this attempt's failure:
    derived, so a transaction run again creates the same rollout, not a second."""
    return uuid5(rollout_id, f"rollback-on-failure:{attempt}")
