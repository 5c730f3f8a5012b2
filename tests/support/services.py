"""Where the tests find PostgreSQL, RabbitMQ and Redis.

Service URLs come from the environment first (``XDP47_TEST_DB_URL``,
``XDP47_TEST_AMQP_URL``, ``XDP47_TEST_REDIS_URL``; ``.ci/run`` sets them for the
local services). Only when
one is unset and a Docker engine answers do we start a testcontainer instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def service_url(kind: str) -> Iterator[str]:
    """Yield a URL for ``kind`` ("db", "amqp" or "redis"): environment first, then
    Docker."""
    env = f"XDP47_TEST_{kind.upper()}_URL"
    url = os.environ.get(env)
    if url:
        yield url
        return
    if not _docker_available():
        pytest.fail(
            f"{env} is unset and no Docker engine answers: point {env} at a running "
            "service (bash .ci/run does this for the local PostgreSQL and RabbitMQ)"
        )
    container: Any
    if kind == "db":
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        with container:
            yield container.get_connection_url()
    elif kind == "redis":
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7-alpine")
        with container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
    else:
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3.13-alpine")
        with container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/"


def with_database(url: str, database: str) -> str:
    """Return ``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
