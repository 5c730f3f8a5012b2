"""Read models of a rollout's progress for the web UI: device states per wave (one
GROUP BY over ``rollout_targets``), the devices an abort would leave on their old
version, the frozen effective policy, and the tenant's heartbeat rate.

Every query is scoped by tenant; the per-rollout ones join ``rollouts`` on the
caller's tenant so another tenant's rollout id yields nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_common.rollout.status import TargetState

__all__ = ["FleetActivity", "PgRolloutProgressRepository", "RolloutExtras"]

# Stored states: for the seconds the scheduler's wave-start follow-up takes, the
# targets of a wave that has just started still count as pending, though their
# devices are already told (``xdp47_common.adapters.desired``).
WAVE_STATE_COUNTS = """
SELECT t.wave, t.state, count(*) AS n
FROM rollout_targets t
JOIN rollouts r ON r.id = t.rollout_id AND r.tenant = $1
WHERE t.rollout_id = $2
GROUP BY t.wave, t.state
"""
# "Not yet updated": told to update or waiting to be told; an abort leaves them
# on their current version.
NOT_YET_APPLIED = """
SELECT count(*)
FROM rollout_targets t
JOIN rollouts r ON r.id = t.rollout_id AND r.tenant = $1
WHERE t.rollout_id = $2 AND t.state IN ('pending', 'assigned')
"""
ROLLOUT_EXTRAS = """
SELECT effective_policy, current_wave_started_at, attempt
FROM rollouts WHERE tenant = $1 AND id = $2
"""
FLEET_ACTIVITY = """
SELECT count(*) AS devices,
       count(*) FILTER (WHERE last_seen > now() - interval '1 minute') AS last_minute,
       count(*) FILTER (WHERE status = 'online') AS online
FROM devices WHERE tenant = $1
"""


@dataclass(frozen=True)
class RolloutExtras:
    effective_policy: dict[str, Any] | None
    current_wave_started_at: datetime | None
    attempt: int


@dataclass(frozen=True)
class FleetActivity:
    devices: int
    seen_last_minute: int
    online: int


class PgRolloutProgressRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def wave_state_counts(
        self, tenant: str, rollout_id: UUID
    ) -> dict[int, dict[TargetState, int]]:
        """Devices per wave and target state; waves without targets are absent."""
        rows = await self._pool.fetch(WAVE_STATE_COUNTS, tenant, rollout_id)
        by_wave: dict[int, dict[TargetState, int]] = {}
        for row in rows:
            by_wave.setdefault(row["wave"], {})[TargetState(row["state"])] = int(
                row["n"]
            )
        return by_wave

    async def not_yet_applied(self, tenant: str, rollout_id: UUID) -> int:
        return int(await self._pool.fetchval(NOT_YET_APPLIED, tenant, rollout_id))

    async def extras(self, tenant: str, rollout_id: UUID) -> RolloutExtras | None:
        row = await self._pool.fetchrow(ROLLOUT_EXTRAS, tenant, rollout_id)
        if row is None:
            return None
        return RolloutExtras(
            effective_policy=row["effective_policy"],
            current_wave_started_at=row["current_wave_started_at"],
            attempt=int(row["attempt"]),
        )

    async def fleet_activity(self, tenant: str) -> FleetActivity:
        row = await self._pool.fetchrow(FLEET_ACTIVITY, tenant)
        assert row is not None
        return FleetActivity(
            devices=int(row["devices"]),
            seen_last_minute=int(row["last_minute"]),
            online=int(row["online"]),
        )
