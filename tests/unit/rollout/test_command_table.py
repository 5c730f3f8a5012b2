"""The core's table of accepted commands is what ``start``/``retry``/``abort``/
``rollback`` do."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from xdp47_common.rollout import (
    ACCEPTED_COMMANDS,
    NO_OP_IN,
    CommandName,
    Decision,
    InvalidTransition,
    RolloutKind,
    RolloutState,
    RolloutStatus,
    abort,
    accepted_from,
    offered_from,
    retry,
    rollback,
    start,
)

APPLY: dict[CommandName, Callable[[RolloutState], Decision]] = {
    CommandName.START: start,
    CommandName.RETRY: retry,
    CommandName.ABORT: lambda r: abort(r, by="op"),
    CommandName.ROLLBACK: lambda r: rollback(r, RolloutKind.ROLLOUT, by="op"),
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
@pytest.mark.parametrize("command", list(CommandName))
def test_each_command_raises_exactly_outside_the_table(
    status: RolloutStatus, command: CommandName
) -> None:
    rollout = _state(status)
    if command not in ACCEPTED_COMMANDS[status]:
        with pytest.raises(InvalidTransition):
            APPLY[command](rollout)
        return
    decision = APPLY[command](rollout)
    if command is CommandName.ROLLBACK:
        # The rollout itself only moves when it runs (aborted first); the
        # rollback is another rollout.
        assert decision.changed is (status is RolloutStatus.RUNNING)
        return
    # Accepted: a move, or a repeat whose effect already holds (a no-op).
    assert decision.changed is (NO_OP_IN[command] is not status)


def test_abort_of_an_aborted_rollout_is_an_accepted_no_op() -> None:
    decision = abort(_state(RolloutStatus.ABORTED), by="op")
    assert not decision.changed
    assert RolloutStatus.ABORTED in accepted_from(CommandName.ABORT)
    # ... which a UI does not offer: it would change nothing.
    assert RolloutStatus.ABORTED not in offered_from(CommandName.ABORT)


def test_the_ui_offers_only_moves() -> None:
    assert offered_from(CommandName.START) == {RolloutStatus.DRAFT}
    assert offered_from(CommandName.RETRY) == {
        RolloutStatus.FAILED,
        RolloutStatus.PARTIAL,
    }
    assert offered_from(CommandName.ABORT) == {
        RolloutStatus.DRAFT,
        RolloutStatus.RUNNING,
    }


def test_rollback_is_offered_where_a_release_may_have_reached_devices() -> None:
    assert offered_from(CommandName.ROLLBACK) == {
        RolloutStatus.RUNNING,
        RolloutStatus.FAILED,
        RolloutStatus.PARTIAL,
        RolloutStatus.COMPLETED,
    }
