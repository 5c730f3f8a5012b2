"""The outbox of the in-memory store (``memory_store``): its rows, and the
relay's side of them (one relay: no locks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from xdp47_common.messages import RolloutEvent
from xdp47_common.topology import Topology
from xdp47_scheduler.ports import Outbox, OutboxRow, Send

if TYPE_CHECKING:
    from tests.unit.scheduler.memory_store import MemoryRolloutStore


@dataclass
class OutboxEntry:
    """A row of the store's outbox, in the order written."""

    id: int
    event: RolloutEvent
    sent: bool = False


def append_events(outbox: list[OutboxEntry], events: Sequence[RolloutEvent]) -> None:
    """Add the events, in order, except those whose id is in the outbox."""
    known = {e.event.message_id for e in outbox}
    for event in events:
        if event.message_id not in known:
            known.add(event.message_id)
            outbox.append(OutboxEntry(len(outbox) + 1, event))


class MemoryOutbox(Outbox):
    def __init__(self, store: MemoryRolloutStore) -> None:
        self.store = store

    async def relay(self, limit: int, send: Send) -> int:
        sent = 0
        for entry in [e for e in self.store.state.outbox if not e.sent][:limit]:
            event = entry.event
            await send(
                OutboxRow(
                    id=entry.id,
                    message_id=event.message_id,
                    tenant=event.tenant,
                    routing_key=Topology.rollout_event_key(event.tenant, event.event),
                    payload=event.model_dump_json(),
                )
            )
            entry.sent = True
            sent += 1
        return sent

    async def prune(self, older_than: datetime) -> int:
        before = len(self.store.state.outbox)
        self.store.state.outbox = [e for e in self.store.state.outbox if not e.sent]
        return before - len(self.store.state.outbox)

    async def unsent(self) -> int:
        return sum(not e.sent for e in self.store.state.outbox)
