"""Several RabbitMQ nodes behind one setting: parsing and fail-over connections.

``XDP47_AMQP_URL`` names one broker, or the nodes of a cluster in either form:

- one URL with several hosts, credentials and virtual host shared:
  ``amqp://user:pass@rabbit-0:5672,rabbit-1:5672,rabbit-2/vhost``;
- full URLs separated by commas: ``amqp://u:p@rabbit-0/,amqp://u:p@rabbit-1/``.

A connection goes to the first node that answers, in the order given. Once up,
it is robust as before (channels, queues and consumers restored), and every
reconnection attempt after a loss goes to the *next* node in turn, so a service
follows the cluster when the node it was on dies instead of waiting for that
node to come back. Quorum queues are replicated, so nothing the old node had
confirmed is lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from xdp47_common.urls import describe_url, split_hosts

__all__ = ["FailoverConnection", "broker_urls", "connect_nodes"]

_SCHEME = re.compile(r"amqps?://", re.IGNORECASE)


def broker_urls(value: str) -> list[str]:
    """The node URLs of a broker setting (one URL, multi-host, or a list).

    Raises:
        ValueError: the setting names no node, or a node is not an AMQP URL.
    """
    urls = split_hosts(value)
    if not urls:
        raise ValueError("no RabbitMQ node given")
    for url in urls:
        if not _SCHEME.match(url):
            raise ValueError(f"{describe_url(url)!r} is not an amqp:// or amqps:// URL")
        if not URL(url).host:
            raise ValueError(f"{describe_url(url)!r} names no host")
    return urls


class FailoverConnection(RobustConnection):
    """A robust connection whose every new attempt goes to the next node.

    aio-pika's ``RobustConnection`` reconnects to ``self.url``, which it reads at
    each attempt; an attempt begins by clearing ``transport``. This class moves
    ``url`` to the next node at that point (from the second attempt on), so the
    reconnect loop, restore of channels and consumers included, stays aio-pika's.
    """

    def __init__(self, urls: Sequence[URL], **kwargs: Any) -> None:
        self._nodes = list(urls)
        self._node = 0
        self._attempts = 0
        super().__init__(self._nodes[0], **kwargs)

    @property
    def transport(self) -> Any:
        return self.__dict__.get("_transport")

    @transport.setter
    def transport(self, value: Any) -> None:
        if value is None and "_transport" in self.__dict__:
            # a new connection attempt: the first uses node 0, each later one
            # the next node in the list
            if self._attempts:
                self._node = (self._node + 1) % len(self._nodes)
                self.url = self._nodes[self._node]
            self._attempts += 1
        self.__dict__["_transport"] = value


async def connect_nodes(
    value: str, *, heartbeat: int = 30, connect_timeout: float = 10
) -> AbstractRobustConnection:
    """Open a robust connection to the first node of ``value`` that answers.

    Raises:
        ValueError: the setting is not one or more AMQP URLs.
        Exception: the last node's connection error when none answers.
    """
    urls = broker_urls(value)
    if len(urls) == 1:
        return await aio_pika.connect_robust(
            urls[0], heartbeat=heartbeat, timeout=connect_timeout
        )
    nodes = [URL(u).update_query(heartbeat=heartbeat) for u in urls]
    last: Exception | None = None
    for start in range(len(nodes)):
        connection = FailoverConnection(nodes[start:] + nodes[:start])
        try:
            await connection.connect(timeout=connect_timeout)
        except Exception as exc:  # aiormq raises many types for a dead node
            last = exc
            await connection.close()
            continue
        return connection
    assert last is not None
    raise last
