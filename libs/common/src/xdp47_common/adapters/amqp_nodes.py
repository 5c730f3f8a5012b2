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

Channels are ``RestoringChannel``: aio-pika's robust channel restores itself when
it is closed, and when the cause is the loss of the whole connection that restore
can start on the dead link before the connection has dropped it; its
``Channel.Open`` is then never answered and the restore holds the channel's lock
for ever, so the connection's own restore on the new node waits behind it and the
channel stays closed (every publish fails). ``RestoringChannel`` does not reopen
on a link that is gone and gives up a reopen that takes longer than
``RestoringChannel.REOPEN_TIMEOUT``; the connection then restores it on the node
it reaches next.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import ChannelInvalidStateError
from aio_pika.robust_channel import RobustChannel
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from xdp47_common.urls import describe_url, split_hosts

__all__ = ["FailoverConnection", "RestoringChannel", "broker_urls", "connect_nodes"]

_SCHEME = re.compile(r"amqps?://", re.IGNORECASE)
# Seconds between two connection attempts after a loss: each attempt goes to the
# next node, and a dead node refuses at once, so the next live one is tried soon.
RECONNECT_INTERVAL = 1.0


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


class RestoringChannel(RobustChannel):
    """A robust channel whose reopen never waits on a lost link (module doc)."""

    REOPEN_TIMEOUT = 15.0

    async def reopen(self) -> None:
        connection: Any = self._connection
        transport = connection.transport
        if (
            transport is None
            or transport.connection.is_closed
            or not connection.connected.is_set()
        ):
            # the connection reopens this channel once it is up again
            raise ChannelInvalidStateError("the connection to the broker is lost")
        async with asyncio.timeout(self.REOPEN_TIMEOUT):
            await super().reopen()


class FailoverConnection(RobustConnection):
    """A robust connection whose every new attempt goes to the next node.

    aio-pika's ``RobustConnection`` reconnects to ``self.url``, which it reads at
    each attempt; an attempt begins by clearing ``transport``. This class moves
    ``url`` to the next node at that point (from the second attempt on), so the
    reconnect loop, restore of channels and consumers included, stays aio-pika's.
    Its channels are ``RestoringChannel``.
    """

    CHANNEL_CLASS = RestoringChannel

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
    nodes = [
        URL(u).update_query(heartbeat=heartbeat, reconnect_interval=RECONNECT_INTERVAL)
        for u in broker_urls(value)
    ]
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
