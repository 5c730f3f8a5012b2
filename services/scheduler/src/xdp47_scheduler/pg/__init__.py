"""The scheduler's PostgreSQL adapter: ``PgRolloutStore`` (the ``RolloutStore``
port) and the SQL behind it. The only scheduler modules that import asyncpg,
with the heartbeat write path (``heartbeats``, ``consumer``); an import contract
(pyproject.toml) holds it."""

from asyncpg import Pool

from xdp47_scheduler.pg.schema import database_problem
from xdp47_scheduler.pg.store import PgRolloutStore

__all__ = ["PgRolloutStore", "Pool", "database_problem"]
