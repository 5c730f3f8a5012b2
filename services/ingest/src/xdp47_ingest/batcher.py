"""Micro-batched, confirmed publishing of heartbeats: one confirm for many.

Each request hands its heartbeat, serialized (``heartbeat_json``), to
``HeartbeatBatcher.submit`` and waits (the device lane, which answers from a
callback, to ``add_callback``). The
batcher collects the heartbeats of one tenant for at most ``max_wait`` seconds (or
until ``max_batch`` are waiting), publishes them as ONE persistent
``HeartbeatBatch`` message and, when the broker confirms it, releases every
waiting request at once; a nack or no confirm in time fails every one of them
with ``PublishFailed`` (each answers 503). So a 202 is still sent only after the
confirm that covers that heartbeat, while the broker, the publisher channel and
the consumer handle one message per batch instead of one per heartbeat
(``docs/performance.md``).

A request that is cancelled (its client went away) leaves its heartbeat in the
batch: the batch is published anyway, which is harmless (the consumer's
``seq > last_seq`` guard makes a duplicate a no-op).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeAlias

import structlog
from opentelemetry.trace import SpanContext

from xdp47_common import tracing
from xdp47_common.bus import Publisher, PublishFailed
from xdp47_common.messages.wire import heartbeat_batch
from xdp47_common.topology import Topology

__all__ = ["Confirmed", "HeartbeatBatcher"]

_log = structlog.get_logger(__name__)


# Called with None once the batch holding the heartbeat is confirmed, or with
# the ``PublishFailed`` that failed it.
Confirmed: TypeAlias = Callable[[BaseException | None], None]


class _Pending:
    """The open batch of one tenant and what its requests wait on: a future
    each (a request that is cancelled cancels only its own), or a callback."""

    __slots__ = ("beats", "callbacks", "timer", "traced", "waiters")

    def __init__(self) -> None:
        self.beats: list[bytes] = []
        self.waiters: list[asyncio.Future[None]] = []
        # ``add_callback``'s: called in place when the batch is settled.
        self.callbacks: list[Confirmed] = []
        self.timer: asyncio.Handle | None = None
        # The sampled request spans of its heartbeats (empty with tracing off).
        self.traced: list[SpanContext] = []

    def release(self, error: BaseException | None) -> None:
        for waiter in self.waiters:
            if waiter.done():
                continue  # its request went away
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        for callback in self.callbacks:
            try:
                callback(error)
            except Exception:  # one answer's failure is not its batch's
                _log.exception("heartbeat confirm callback failed")


class HeartbeatBatcher:
    """Collect heartbeats per tenant, publish each batch once, confirm all.

    Args:
        publisher: the bus (its ``Publisher`` role); ``publish`` returns after the
            confirm and raises ``PublishFailed`` otherwise.
        topology: where heartbeats go (``telemetry``, ``heartbeat.<tenant>``).
        max_batch: publish as soon as this many heartbeats wait.
        max_wait: seconds the first heartbeat of a batch waits for company; 0
            publishes at the next turn of the event loop (what arrived together).
    """

    def __init__(
        self,
        publisher: Publisher,
        topology: Topology,
        *,
        max_batch: int = 256,
        max_wait: float = 0.02,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._publisher = publisher
        self._topology = topology
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._open: dict[str, _Pending] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def submit(self, tenant: str, heartbeat: bytes) -> None:
        """Return once the batch holding ``heartbeat`` (one ``Heartbeat`` as JSON,
        ``heartbeat_json``) is confirmed.

        Raises:
            PublishFailed: the broker refused or did not confirm that batch.
        """
        await self.add(tenant, heartbeat)

    def add(self, tenant: str, heartbeat: bytes) -> asyncio.Future[None]:
        """``submit`` without waiting: the future is done when the batch holding
        ``heartbeat`` is confirmed, or fails with ``PublishFailed``."""
        waiter: asyncio.Future[None] = self._loop_now().create_future()
        pending = self._append(tenant, heartbeat)
        pending.waiters.append(waiter)
        self._flush_if_full(tenant, pending)
        return waiter

    def add_callback(self, tenant: str, heartbeat: bytes, confirmed: Confirmed) -> None:
        """``add`` with a callback instead of a future: ``confirmed(None)`` once
        the batch holding ``heartbeat`` is confirmed, ``confirmed(error)`` with
        the ``PublishFailed`` otherwise, called in place when the batch settles.
        What a future costs per heartbeat (its creation, a done callback with
        its context, a turn of the event loop) is skipped on the device lane's
        path, which answers from that callback anyway."""
        pending = self._append(tenant, heartbeat)
        pending.callbacks.append(confirmed)
        self._flush_if_full(tenant, pending)

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        # The loop of the first heartbeat, kept: asking for the running loop
        # checks the process id, a system call per heartbeat.
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _append(self, tenant: str, heartbeat: bytes) -> _Pending:
        """The open batch of ``tenant`` (opened, its timer armed, if none) with
        ``heartbeat`` added."""
        pending = self._open.get(tenant)
        if pending is None:
            pending = self._open[tenant] = _Pending()
            loop = self._loop_now()
            if self._max_wait > 0:
                pending.timer = loop.call_later(self._max_wait, self._flush, tenant)
            else:
                pending.timer = loop.call_soon(self._flush, tenant)
        pending.beats.append(heartbeat)
        traced = tracing.sampled_span()
        if traced is not None:
            pending.traced.append(traced)
        return pending

    def _flush_if_full(self, tenant: str, pending: _Pending) -> None:
        if len(pending.beats) >= self._max_batch:
            self._flush(tenant)

    def _flush(self, tenant: str) -> None:
        pending = self._open.pop(tenant, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(self._publish(tenant, pending))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _publish(self, tenant: str, pending: _Pending) -> None:
        message = heartbeat_batch(tenant, pending.beats)
        try:
            # The batch's publish continues its first sampled heartbeat's trace
            # and links the others (each with a publish span of its own).
            with tracing.carrying(pending.traced):
                await self._publisher.publish(
                    self._topology.telemetry,
                    self._topology.heartbeat_key(tenant),
                    message,
                )
        except PublishFailed as exc:
            pending.release(exc)
        except BaseException as exc:  # cancelled at shutdown, or a bug
            pending.release(PublishFailed(f"publish aborted: {exc!r}"))
            raise
        else:
            pending.release(None)

    async def close(self) -> None:
        """Publish what is open and wait for every batch in flight."""
        for tenant in list(self._open):
            self._flush(tenant)
        if self._inflight:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._inflight, return_exceptions=True)
