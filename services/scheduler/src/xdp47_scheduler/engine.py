"""The rollout engine: the scheduler's handlers wired over one ``RolloutStore``.

Entry points, each a small module of its own:

- ``handle_command`` (``dispatch``, with a handler per command in ``handlers``);
- ``evaluate`` (``gates``: the gates of one rollout, applied by ``advance``);
- ``tick`` (``timer``: offline marking, every running rollout, reconcile);
- ``follow_up`` / ``drain`` (``followup``: the work a wave start leaves);
- the heartbeat hooks ``after_write`` / ``after_commit`` (below).

Decisions come from the pure core (``xdp47_common.rollout``); every change of a
rollout is one store transaction that locks it first (``runner``), and its events
go to the outbox in that transaction. The engine knows the store only by its port
(``ports``); ``pg.PgRolloutStore`` is the PostgreSQL one.
"""

from __future__ import annotations

from uuid import UUID

from xdp47_common.clock import utcnow
from xdp47_common.messages import RolloutCommand
from xdp47_common.rollout import EffectivePolicy
from xdp47_scheduler import dispatch, gates
from xdp47_scheduler.advance import Clock, Context
from xdp47_scheduler.analysis import AnalysisFeed
from xdp47_scheduler.backlog import DrainedProbe, HeardUntil
from xdp47_scheduler.events import EventSink
from xdp47_scheduler.followup import FollowUps
from xdp47_scheduler.heartbeats import HeartbeatWriteResult
from xdp47_scheduler.metrics import HEARTBEAT_LAG, observe_all
from xdp47_scheduler.per_rollout import PerRollout
from xdp47_scheduler.ports import NOTHING_SETTLED, RolloutStore
from xdp47_scheduler.runner import Runner
from xdp47_scheduler.timer import OFFLINE_CHECKS, Timer

__all__ = ["OFFLINE_CHECKS", "Clock", "RolloutEngine"]


class RolloutEngine:
    """Applies commands and gate decisions; one instance per scheduler process."""

    def __init__(
        self,
        store: RolloutStore,
        defaults: EffectivePolicy,
        events: EventSink,
        *,
        clock: Clock = utcnow,
        offline_after: float = 90.0,
        drained: DrainedProbe | None = None,
        late_join_interval: float = 30.0,
    ) -> None:
        self.store = store
        # Offline and wave deadlines are judged from it, never from a clock the
        # heartbeat queue has not caught up with.
        self.heard = HeardUntil(drained)
        self._ctx = Context(defaults=defaults, clock=clock, heard=self.heard)
        self._runner = Runner(store, events, self._follow)
        self._follow_ups = FollowUps(self._runner, self.evaluate)
        self._timer = Timer(
            store,
            self._ctx,
            self._follow_ups,
            lambda rollout_id: self.evaluate(rollout_id, skip_locked=True),
            offline_after=offline_after,
            late_join_interval=late_join_interval,
        )
        self._touched: set[UUID] = set()
        # The gates a heartbeat batch made due, judged off the consumer's path.
        self._gates = PerRollout(self.evaluate, "gate evaluation")
        self._analysis = AnalysisFeed()

    def _follow(self, rollout_id: UUID) -> None:
        self._follow_ups.follow(rollout_id)

    async def handle_command(self, command: RolloutCommand) -> None:
        """Apply a rollout command once (inbox + state machine)."""
        await dispatch.handle_command(self._runner, self._ctx, command, self._follow)

    async def evaluate(self, rollout_id: UUID, *, skip_locked: bool = False) -> None:
        """Evaluate the gates of one running rollout and apply what they decide."""
        await gates.evaluate(
            self._runner, self._ctx, rollout_id, self._follow, skip_locked=skip_locked
        )

    async def tick(self) -> None:
        """The timer: offline marking, the gates and any follow-up left of every
        running rollout, repair."""
        await self._timer.tick()

    async def follow_up(self, rollout_id: UUID) -> None:
        """The work a wave start leaves, after its commit; idempotent."""
        await self._follow_ups.follow_up(rollout_id)

    async def drain(self) -> None:
        """Wait until no gate evaluation a heartbeat batch asked for and no
        follow-up runs (including ones they schedule)."""
        while not (self._gates.idle and self._follow_ups.idle):
            await self._gates.drain()
            await self._follow_ups.drain()

    # -- heartbeat hooks ----------------------------------------------------------

    async def after_write(self, conn: object, result: HeartbeatWriteResult) -> None:
        """In the heartbeat batch's transaction (``conn``, the store adapter's
        handle of it): move the changed devices' targets, then add the samples
        of devices in analysed rollouts to the running aggregates (after the
        moves, so a device that applies with this heartbeat counts as updated)."""
        now = self._ctx.clock()
        observe_all(
            HEARTBEAT_LAG,
            [max(0.0, (now - d.last_seen).total_seconds()) for d in result.changed],
        )
        tx = self.store.joined(conn)
        # Only devices whose active target is assigned (the write probed it):
        # no other target can move, and most batches have none.
        devices = [(d.tenant, d.device_id) for d in result.changed if d.assigned]
        settled = NOTHING_SETTLED
        if devices:
            settled = await tx.settle_devices(devices)
            self._touched |= settled.touched
        await self._analysis.record(tx, result, settled.moved)

    async def after_commit(self, result: HeartbeatWriteResult) -> None:
        """After the batch committed: advance the watermark to the newest
        heartbeat committed, and ask for the gates of the rollouts whose counters
        moved. They are judged in a task per rollout (``drain`` waits for them),
        so the consumer goes on with the next batch meanwhile: a decision can be
        a rollout's end, which releases every one of its targets in one
        statement (a million rows for a million-device rollout), and the
        heartbeats stalled behind it would pile up in the consumer's prefetch.
        An evaluation lost in a crash after the ack is the timer's on its next
        tick."""
        self.heard.committed(result, self._ctx.clock())
        touched, self._touched = self._touched, set()
        for rollout_id in sorted(touched):
            self._gates.request(rollout_id)
