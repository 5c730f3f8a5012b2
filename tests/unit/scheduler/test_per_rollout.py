"""``PerRollout``: one task per rollout, requests while it runs coalesced into one
more run, a failure logged without ending later runs, ``drain`` waits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict

import pytest

from xdp47_scheduler.per_rollout import PerRollout

A = uuid.UUID(int=1)
B = uuid.UUID(int=2)


class Work:
    """Records each run; a run of a rollout in ``hold`` waits for ``go``."""

    def __init__(self) -> None:
        self.runs: list[uuid.UUID] = []
        self.running: dict[uuid.UUID, int] = {}
        self.most_at_once = 0
        self.go = asyncio.Event()
        self.started = asyncio.Event()
        self.hold: set[uuid.UUID] = set()
        self.fail: set[uuid.UUID] = set()
        self.ended: defaultdict[uuid.UUID, asyncio.Event] = defaultdict(asyncio.Event)

    async def __call__(self, rollout_id: uuid.UUID) -> None:
        self.running[rollout_id] = self.running.get(rollout_id, 0) + 1
        self.most_at_once = max(self.most_at_once, self.running[rollout_id])
        try:
            self.started.set()
            if rollout_id in self.hold:
                await self.go.wait()
            self.runs.append(rollout_id)
            if rollout_id in self.fail:
                self.fail.discard(rollout_id)
                raise RuntimeError("boom")
        finally:
            self.running[rollout_id] -= 1
            self.ended[rollout_id].set()


async def test_requests_during_a_run_make_exactly_one_more_run() -> None:
    work = Work()
    work.hold.add(A)
    tasks = PerRollout(work, "gate evaluation")
    tasks.request(A)
    await work.started.wait()
    assert tasks.running(A)
    for _ in range(5):
        tasks.request(A)
    work.go.set()
    await tasks.drain()
    assert work.runs == [A, A]
    assert work.most_at_once == 1
    assert tasks.idle
    assert not tasks.running(A)


async def test_rollouts_run_side_by_side() -> None:
    work = Work()
    work.hold.add(A)
    tasks = PerRollout(work, "gate evaluation")
    tasks.request(A)
    tasks.request(B)
    # B's run ends although A's is held.
    await work.ended[B].wait()
    assert work.runs == [B]
    work.go.set()
    await tasks.drain()
    assert sorted(work.runs) == [A, B]


async def test_a_failure_is_logged_and_the_next_request_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    work = Work()
    work.fail.add(A)
    tasks = PerRollout(work, "follow-up")
    with caplog.at_level(logging.ERROR, logger="xdp47_scheduler.per_rollout"):
        tasks.request(A)
        await tasks.drain()
    assert f"follow-up of rollout {A} failed" in caplog.text
    tasks.request(A)
    await tasks.drain()
    assert work.runs == [A, A]


async def test_drain_waits_for_runs_requested_while_draining() -> None:
    work = Work()

    async def chained(rollout_id: uuid.UUID) -> None:
        await work(rollout_id)
        if rollout_id == A:
            tasks.request(B)

    tasks = PerRollout(chained, "gate evaluation")
    tasks.request(A)
    await tasks.drain()
    assert work.runs == [A, B]
    assert tasks.idle
