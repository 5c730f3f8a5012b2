"""RabbitMQ names: the one place that spells exchanges, queues and routing keys.

With an empty namespace the names are exactly those of the design brief; a
namespace prefixes every name so that test runs can share one broker.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DELIVERY_LIMIT", "Topology"]

# Debian's RabbitMQ 3.10 has no default delivery limit on quorum queues; without
# one a poison message would be redelivered forever.
DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class Topology:
    namespace: str = ""

    def _n(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def telemetry(self) -> str:
        return self._n("xdp47.telemetry")

    @property
    def commands(self) -> str:
        return self._n("xdp47.commands")

    @property
    def events(self) -> str:
        return self._n("xdp47.events")

    @property
    def webhooks(self) -> str:
        """Direct exchange of webhook delivery jobs (``delivery``, ``retry.<ms>``)."""
        return self._n("xdp47.webhooks")

    @property
    def webhook_events_queue(self) -> str:
        """The webhook worker's copy of every rollout event (declared by it)."""
        return self._n("webhooks.events")

    @property
    def webhook_deliveries_queue(self) -> str:
        return self._n("webhooks.deliveries")

    def webhook_retry_queue(self, delay_ms: int) -> str:
        """The delay queue of one retry delay: its TTL ends into the work queue."""
        return self._n(f"webhooks.retry.{delay_ms}ms")

    @property
    def dlx(self) -> str:
        return self._n("xdp47.dlx")

    @property
    def heartbeats_queue(self) -> str:
        return self._n("scheduler.heartbeats")

    @property
    def commands_queue(self) -> str:
        return self._n("scheduler.commands")

    def dead_queue(self, work_queue: str) -> str:
        return f"{work_queue}.dead"

    @property
    def work_queues(self) -> tuple[tuple[str, str, str], ...]:
        """(queue, exchange, binding key) for every work queue."""
        return (
            (self.heartbeats_queue, self.telemetry, "heartbeat.*"),
            (self.commands_queue, self.commands, "rollout.*"),
        )

    # Routing keys on the webhooks exchange: the work queue's, and each delay's.
    WEBHOOK_DELIVERY_KEY = "delivery"

    @staticmethod
    def webhook_retry_key(delay_ms: int) -> str:
        return f"retry.{delay_ms}"

    @staticmethod
    def heartbeat_key(tenant: str) -> str:
        return f"heartbeat.{tenant}"

    @staticmethod
    def command_key(command_type: str) -> str:
        # command types are already "rollout.start" etc.
        return command_type

    @staticmethod
    def rollout_event_key(tenant: str, event: str) -> str:
        return f"rollout.{tenant}.{event}"
