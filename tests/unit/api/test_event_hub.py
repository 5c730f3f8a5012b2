"""The UI's event hub survives the way streams end and a broken subscription.

Observation: after an abort's confirm a page stayed ``running`` though the
scheduler had aborted. The page before it went away, its stream was cancelled
(anyio: level-triggered, so the clean-up's awaits are cancelled too), the
unbind RPC was cut half way, aiormq closed the hub's channel, and every stream
after it failed to bind, so no refresh ever came."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import anyio

from xdp47_api.ui.events import RolloutEventHub
from xdp47_common.messages import RolloutEvent
from xdp47_common.topology import Topology


class FakeSubscription:
    """An RPC-like subscription: each call takes a moment, like a round trip."""

    def __init__(self, *, broken: bool = False) -> None:
        self.broken = broken
        self.bound: list[str] = []
        self.unbinds_cut = 0
        self.unbinds_done = 0
        self.unbind_ended = asyncio.Event()

    async def bind(self, pattern: str) -> None:
        if self.broken:
            raise RuntimeError("channel closed")
        await asyncio.sleep(0.01)
        self.bound.append(pattern)

    async def unbind(self, pattern: str) -> None:
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.unbinds_cut += 1  # aiormq closes the channel here
            self.unbind_ended.set()
            raise
        self.bound.remove(pattern)
        self.unbinds_done += 1
        self.unbind_ended.set()

    async def close(self) -> None:
        self.broken = True


class FakeFanout:
    def __init__(self, *subs: FakeSubscription) -> None:
        self.subs = list(subs)
        self.opened: list[FakeSubscription] = []

    async def subscribe(
        self, exchange: str, on_event: Any, *, max_length: int = 10_000
    ) -> FakeSubscription:
        sub = self.subs.pop(0) if self.subs else FakeSubscription()
        self.opened.append(sub)
        return sub


async def test_a_cancelled_stream_never_cuts_the_unbind() -> None:
    fanout = FakeFanout()
    hub = RolloutEventHub(fanout, Topology("t"))
    ready = anyio.Event()
    scope = anyio.CancelScope()

    async def stream() -> None:
        with scope:
            async with hub.subscribe("acme", uuid.uuid4()) as sub:
                ready.set()
                await sub.queue.get()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stream)
        await ready.wait()
        scope.cancel()
    (only,) = fanout.opened
    with anyio.fail_after(5):  # the clean-up finishes on its own
        await only.unbind_ended.wait()
    assert only.unbinds_cut == 0
    assert only.unbinds_done == 1
    assert only.bound == []


async def test_a_broken_subscription_is_replaced_and_every_tenant_bound_again() -> None:
    broken = FakeSubscription()
    fanout = FakeFanout(broken)
    hub = RolloutEventHub(fanout, Topology("t"))
    async with hub.subscribe("acme", uuid.uuid4()):
        broken.broken = True  # e.g. the broker closed the channel
        async with hub.subscribe("globex", uuid.uuid4()):
            assert len(fanout.opened) == 2
            fresh = fanout.opened[1]
            assert sorted(fresh.bound) == [
                Topology.rollout_event_key("acme", "#"),
                Topology.rollout_event_key("globex", "#"),
            ]


class _Delivery:
    def __init__(self, body: bytes, routing_key: str) -> None:
        self.body = body
        self.routing_key = routing_key
        self.message_id: str | None = None
        self.type: str | None = None


async def test_an_event_published_twice_reaches_a_stream_once() -> None:
    hub = RolloutEventHub(FakeFanout(), Topology("t"))
    rid = uuid.uuid4()
    async with hub.subscribe("acme", rid) as sub:
        first = RolloutEvent(tenant="acme", rollout_id=rid, event="started")
        other = RolloutEvent(tenant="acme", rollout_id=rid, event="wave_started")
        for event in (first, first, other, first):
            body = event.model_dump_json().encode()
            await hub._deliver(_Delivery(body, f"rollout.acme.{event.event}"))
        got = [sub.queue.get_nowait().event for _ in range(sub.queue.qsize())]
    assert got == ["started", "wave_started"]
