"""The scheduler's audit trail on the in-memory store: every judged command and
every decision is appended in the transaction that applies it, by the command's
actor or ``scheduler`` acting for it; a rolled-back transaction leaves none."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

import pytest

from tests.unit.scheduler.memory_store import Crash, MemoryRolloutStore
from tests.unit.scheduler.test_engine import DEFAULTS, TENANT, Clock, Events, World
from xdp47_common.messages import AbortRollout, StartRollout
from xdp47_common.messages.rollout import _RolloutCommandBase
from xdp47_common.models.audit import AuditEntry
from xdp47_common.rollout import RolloutStatus
from xdp47_scheduler import handlers
from xdp47_scheduler.engine import RolloutEngine


@pytest.fixture
def w() -> World:
    clock = Clock()
    store = MemoryRolloutStore(clock)
    events = Events()
    return World(
        store, RolloutEngine(store, DEFAULTS, events, clock=clock), events, clock
    )


def trail(w: World) -> list[AuditEntry]:
    return list(w.store.state.trail)


def brief(entries: list[AuditEntry]) -> list[tuple[Any, ...]]:
    return [
        (e.action, e.actor, e.on_behalf_of, e.status_before, e.status_after, e.outcome)
        for e in entries
    ]


def start(rid: uuid.UUID) -> StartRollout:
    return StartRollout(
        tenant=TENANT,
        rollout_id=rid,
        requested_by="token:op",
        actor_name="alice",
        request_id="req-1",
    )


async def test_a_run_lists_every_action_with_its_actor(w: World) -> None:
    rid = w.rollout(devices=4, waves=2)
    await w.send(start(rid))
    assert brief(trail(w)) == [
        ("rollout.start", "token:op", None, "draft", "running", "applied"),
        ("rollout.started", "scheduler", "token:op", "draft", "running", "applied"),
        (
            "rollout.wave_started",
            "scheduler",
            "token:op",
            "draft",
            "running",
            "applied",
        ),
    ]
    first = trail(w)[0]
    assert (first.actor_name, first.request_id, first.rollout_id) == (
        "alice",
        "req-1",
        rid,
    )
    assert trail(w)[1].on_behalf_of_name == "alice"
    assert trail(w)[2].detail == {"wave": 1, "attempt": 1}

    await w.report(*sorted(w.targets(rid, 1)))
    await w.report(*sorted(w.targets(rid, 2)))
    # The gates' own decisions: by the scheduler, for nobody.
    assert [(e.action, e.actor, e.on_behalf_of) for e in trail(w)[3:]] == [
        ("rollout.wave_finished", "scheduler", None),
        ("rollout.wave_started", "scheduler", None),
        ("rollout.wave_finished", "scheduler", None),
        ("rollout.completed", "scheduler", None),
    ]
    assert trail(w)[-1].status_after == "completed"


@pytest.mark.parametrize(
    "step", ["claim", "lock", "write_plan", "apply", "start_wave", "append_trail"]
)
async def test_a_rolled_back_command_leaves_no_entry(w: World, step: str) -> None:
    rid = w.rollout(devices=4, waves=2)
    command = start(rid)
    w.store.crash_at = step
    with pytest.raises(Crash):
        await w.send(command)
    assert trail(w) == []
    assert w.r(rid).status is RolloutStatus.DRAFT

    await w.send(command)  # redelivered: applied, and recorded, once
    assert [e.action for e in trail(w)] == [
        "rollout.start",
        "rollout.started",
        "rollout.wave_started",
    ]
    await w.send(command)  # a duplicate: its first delivery was recorded
    assert len(trail(w)) == 3


async def test_rejected_and_no_op_commands_are_recorded(w: World) -> None:
    rid = w.rollout(devices=2, waves=1)
    await w.send(start(rid))
    await w.send(
        AbortRollout(
            tenant=TENANT, rollout_id=rid, requested_by="token:b", reason="bad build"
        )
    )
    abort = trail(w)[3]
    assert brief([abort]) == [
        ("rollout.abort", "token:b", None, "running", "aborted", "applied")
    ]
    assert abort.detail["reason"] == "bad build"
    assert trail(w)[4].action == "rollout.aborted"
    assert trail(w)[4].on_behalf_of == "token:b"

    seen = len(trail(w))
    await w.send(AbortRollout(tenant=TENANT, rollout_id=rid, requested_by="token:c"))
    await w.send(start(rid))
    assert brief(trail(w)[seen:]) == [
        ("rollout.abort", "token:c", None, "aborted", "aborted", "no_op"),
        ("rollout.start", "token:op", None, "aborted", "aborted", "rejected"),
    ]
    assert "aborted" in trail(w)[-1].detail["detail"]


async def test_a_command_without_its_sender_says_so(w: World) -> None:
    rid = w.rollout(devices=2, waves=1)
    await w.send(StartRollout(tenant=TENANT, rollout_id=rid))
    assert trail(w)[0].actor == "unknown"


async def test_the_timer_records_a_timed_out_wave(w: World) -> None:
    rid = w.rollout(devices=2, waves=1)
    await w.send(start(rid))
    w.clock.now += timedelta(seconds=DEFAULTS.wave_deadline_seconds + 1)
    await w.engine.tick()
    actions = [(e.action, e.actor, e.on_behalf_of) for e in trail(w)[3:]]
    assert actions[0] == ("rollout.wave_timed_out", "scheduler", None)
    assert actions[-1] == ("rollout.failed", "scheduler", None)


class PingRollout(_RolloutCommandBase):
    """A command type the scheduler did not know when the trail was written."""

    type: Literal["rollout.ping"] = "rollout.ping"
    note: str


async def test_a_new_command_type_is_recorded_without_more_code(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handle_ping(*_: Any) -> None:
        return None  # its effect already holds

    monkeypatch.setitem(handlers.HANDLERS, "rollout.ping", handle_ping)
    rid = w.rollout(devices=2, waves=1)
    command: Any = PingRollout(
        tenant=TENANT, rollout_id=rid, requested_by="token:p", note="hello"
    )
    await w.send(command)
    (entry,) = trail(w)
    assert brief([entry]) == [
        ("rollout.ping", "token:p", None, "draft", "draft", "no_op")
    ]
    assert entry.detail == {"message_id": str(command.message_id), "note": "hello"}
