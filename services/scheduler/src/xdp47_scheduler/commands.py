"""The command consumer: start / retry / abort from ``scheduler.commands``.

Decoded with ``COMMAND_ADAPTER``: an unknown ``type`` or a malformed body is
dead-lettered by the bus's batch consumer. Each command is applied by the engine in
its own transaction with an ``inbox`` row, so a redelivered command has no second
effect; the batch is acked after every command of it committed.
"""

from __future__ import annotations

from xdp47_common.adapters.pg import is_transient_db_error
from xdp47_common.bus import ConsumerOptions, WorkConsumer, WorkQueues
from xdp47_common.messages import COMMAND_ADAPTER, RolloutCommand
from xdp47_common.topology import Topology
from xdp47_scheduler.engine import RolloutEngine

__all__ = ["CommandConsumer"]


class CommandConsumer:
    """Consume rollout commands from the bus (a consumer of its own)."""

    def __init__(
        self,
        engine: RolloutEngine,
        queues: WorkQueues,
        topology: Topology,
        *,
        batch_size: int = 20,
    ) -> None:
        self._engine = engine
        self._consumer: WorkConsumer = queues.batch_consumer(
            topology.commands_queue,
            COMMAND_ADAPTER.validate_json,
            self.handle,
            ConsumerOptions(
                max_batch=batch_size,
                max_wait_ms=5,
                prefetch=batch_size,
                is_transient=is_transient_db_error,
            ),
        )

    async def handle(self, batch: list[RolloutCommand]) -> None:
        for command in batch:
            await self._engine.handle_command(command)

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
