"""The registry of the metrics every service shares (``xdp47_messages_*``,
``xdp47_consumer_*``): the AMQP publisher's and the batch consumer's counters.

They are registered here, not on prometheus_client's process-wide default
registry, and every service's ``/metrics`` serves this registry beside its own
(``exposition``), so a publish by ingest or the api is counted where it is
scraped. Names: ``xdp47_<service>_…`` for what one service measures,
``xdp47_messages_…``/``xdp47_consumer_…`` for this shared plumbing
(docs/metrics.md lists them all).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

__all__ = ["PLUMBING", "exposition"]

PLUMBING = CollectorRegistry(auto_describe=True)


def exposition(*registries: CollectorRegistry) -> bytes:
    """The text format of ``registries`` followed by ``PLUMBING``'s."""
    return b"".join(generate_latest(r) for r in (*registries, PLUMBING))
