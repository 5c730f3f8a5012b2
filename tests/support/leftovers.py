"""What a test run left on the shared RabbitMQ.

Every namespace a run declares in starts with the run's prefix
(``tests/conftest.py``: ``t_<run>_<worker>``), and every fixture that declares
deletes what it declared on teardown. This module lists the broker's queues and
exchanges after the run and names those still under the prefix. The broker has
no management plugin (and AMQP cannot list queues), so it asks ``rabbitmqctl``,
which needs the local node's Erlang cookie (root, or the rabbitmq user): where
that is not available, or the broker is not on this machine, the check says so
and is skipped rather than enabling anything on the shared broker.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Leftovers", "find_leftovers"]

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Leftovers:
    """Queues and exchanges found under the prefix; ``skipped`` says why none
    were looked for."""

    queues: tuple[str, ...] = ()
    exchanges: tuple[str, ...] = ()
    skipped: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.queues + self.exchanges


def _list(kind: str) -> list[str]:
    done = subprocess.run(
        ["rabbitmqctl", "--quiet", f"list_{kind}", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"rabbitmqctl exited {done.returncode}")
    return [line for line in done.stdout.splitlines() if line]


def find_leftovers(amqp_url: str, prefix: str) -> Leftovers:
    """Queues and exchanges of the broker at ``amqp_url`` named ``prefix…``."""
    host = urlsplit(amqp_url.split(",")[0]).hostname or ""
    if host not in _LOCAL_HOSTS:
        return Leftovers(skipped=f"the broker ({host}) is not on this machine")
    if shutil.which("rabbitmqctl") is None:
        return Leftovers(skipped="no rabbitmqctl on PATH")
    try:
        queues = _list("queues")
        exchanges = _list("exchanges")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Leftovers(skipped=f"rabbitmqctl failed: {exc}")
    return Leftovers(
        queues=tuple(sorted(q for q in queues if q.startswith(prefix))),
        exchanges=tuple(sorted(x for x in exchanges if x.startswith(prefix))),
    )
