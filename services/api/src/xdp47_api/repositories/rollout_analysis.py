"""A rollout's telemetry analysis as stored: the analysis it runs under and the
running aggregates of its current wave (written by the scheduler)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg

from xdp47_common.models import AnalysisReport, analysis_report
from xdp47_common.rollout import AnalysisPolicy, Cohort, MetricAggregate
from xdp47_common.rollout.status import RolloutStatus

__all__ = ["PgRolloutAnalysisRepository"]

_ROLLOUT = """
SELECT id, status, attempt, current_wave, waves,
       (effective_policy->'analysis')::text AS analysis
FROM rollouts WHERE tenant = $1 AND id = $2
"""
_AGGREGATES = """
SELECT cohort, metric, devices, samples, total FROM rollout_analysis
WHERE rollout_id = $1 AND attempt = $2 AND wave = $3
"""


class PgRolloutAnalysisRepository:
    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def report(self, tenant: str, rollout_id: UUID) -> AnalysisReport | None:
        """The tenant's rollout's analysis now; ``None`` when there is no such
        rollout."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_ROLLOUT, tenant, rollout_id)
            if row is None:
                return None
            stored = row["analysis"]
            analysis = (
                None
                if stored is None or stored == "null"
                else AnalysisPolicy.model_validate(json.loads(stored))
            )
            rows = []
            if analysis is not None and row["current_wave"] is not None:
                rows = await conn.fetch(
                    _AGGREGATES, rollout_id, row["attempt"], row["current_wave"]
                )
        return analysis_report(
            rollout_id,
            RolloutStatus(row["status"]),
            row["attempt"],
            row["current_wave"],
            row["waves"],
            analysis,
            {
                (Cohort(r["cohort"]), r["metric"]): MetricAggregate(
                    r["devices"], r["samples"], r["total"]
                )
                for r in rows
            },
        )
