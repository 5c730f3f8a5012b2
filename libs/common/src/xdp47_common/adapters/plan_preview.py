"""The plan as the API shows it: a preview before the start, the stored one after.

``rollout_plan`` shows a draft as ``planning``'s ranking in a read-only SELECT
(plus the excluded devices with their reason), and a started rollout as the
targets of its written waves (states as devices see them) and the waves to come
as they would start now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from xdp47_common.adapters import selector_sql
from xdp47_common.adapters.desired import DEVICE_ZONE, target_state
from xdp47_common.adapters.planning import (
    RANK_KEY,
    Connection,
    PlanningForm,
    PlanTarget,
    by_form,
    candidate_filter,
    count_candidates,
    first_ranks,
    plan_args,
    planning_form,
    reserving_cte,
    unwritten_candidates,
)
from xdp47_common.models.plan import (
    PlanExclusion,
    PlannedDevice,
    PlanWave,
    RolloutPlan,
)
from xdp47_common.rollout.exclusions import Exclusion
from xdp47_common.rollout.planner import wave_bounds
from xdp47_common.rollout.status import RolloutStatus, TargetState
from xdp47_common.rollout.windows import parse_windows, zone_states

__all__ = ["PlanWindows", "rollout_plan"]


@dataclass(frozen=True)
class PlanWindows:
    """The policy's maintenance windows (none: the plan shows no window), the
    tenant's default zone and the instant the plan shows them at."""

    windows: Sequence[str] = ()
    default_zone: str | None = None
    now: datetime | None = None

    def of(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The window fields of each listed device (by id): its zone, whether
        the window is open and when it (next) opens, one computation per zone."""
        if not self.windows or self.now is None:
            return {}
        states = zone_states(
            parse_windows(self.windows),
            {r["zone"] for r in rows},
            self.default_zone,
            self.now,
        )
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            name, state = states[r["zone"]]
            out[r["id"]] = {
                "timezone": name,
                "window_open": state.open,
                "window_opens_at": state.next_open,
            }
        return out


def _preview_sql(form: PlanningForm) -> str:
    """The first ``$7`` ranked candidates of each wave, with the wave's online count.

    $5 is the first rank of each wave (``int8[]``, see ``first_ranks``): the wave
    of rank rn is the number of first ranks <= rn. The guard ``rn <= $6`` (the
    total) keeps a device that became a candidate between the count and this
    statement out.
    """
    return f"""
WITH {reserving_cte("$1", "$2")}, ranked AS (
    SELECT d.id, d.status, {DEVICE_ZONE} AS zone,
           row_number() OVER (ORDER BY {RANK_KEY}) AS rn
    FROM devices AS d
    WHERE {candidate_filter("$1", "$2", "$3", "$4", form)}
), placed AS (
    SELECT id, status, zone, rn, width_bucket(rn, $5::int8[]) AS wave
    FROM ranked WHERE rn <= $6
), numbered AS (
    SELECT id, status, zone, wave, rn,
           row_number() OVER (PARTITION BY wave ORDER BY rn) AS k,
           count(*) FILTER (WHERE status = 'online') OVER (PARTITION BY wave)
               AS online
    FROM placed
)
SELECT wave, id, status, zone, online FROM numbered WHERE k <= $7
ORDER BY wave, k
"""  # nosec B608


_PREVIEW = by_form(_preview_sql)

# The order of the CASE is the order of ``Exclusion`` (first reason wins), as in
# ``exclusions.classify_device``.
_EXCLUDED = f"""
WITH {reserving_cte("$1", "$2")}, classified AS (
    SELECT d.id, CASE
        WHEN d.channel <> $3 THEN 'wrong_channel'
        WHEN NOT ({selector_sql.rollout_selects("$1", "$4")}) THEN 'label_mismatch'
        WHEN NOT ({selector_sql.rollout_compatible("$1")}) THEN 'incompatible'
        WHEN EXISTS (
            SELECT 1 FROM rollout_targets AS o
            WHERE o.tenant = d.tenant AND o.device_id = d.id AND o.active
              AND o.rollout_id <> $1
        ) OR EXISTS (
            SELECT 1 FROM reserving AS v
            WHERE v.channel = d.channel AND {selector_sql.reserving_match("v")}
        ) THEN 'in_another_rollout'
        WHEN $5 AND d.status <> 'online' THEN 'offline'
    END AS reason
    FROM devices AS d WHERE d.tenant = $2
), numbered AS (
    SELECT id, reason, count(*) OVER (PARTITION BY reason) AS n,
           row_number() OVER (PARTITION BY reason ORDER BY id COLLATE "C") AS k
    FROM classified WHERE reason IS NOT NULL
)
SELECT reason, id, n FROM numbered WHERE k <= $6 ORDER BY reason, k
"""  # nosec B608

# States as devices see them (``target_state``: a pending target of a started
# wave is told, before the scheduler's follow-up moves the row).
_STORED = f"""
WITH numbered AS (
    SELECT t.wave, t.device_id, {target_state("t", "r")} AS state, t.reason, d.status,
           t.late, {DEVICE_ZONE} AS zone,
           row_number() OVER (PARTITION BY t.wave ORDER BY t.device_id COLLATE "C")
               AS k
    FROM rollout_targets AS t
    JOIN rollouts AS r ON r.id = t.rollout_id
    JOIN devices AS d ON d.tenant = t.tenant AND d.id = t.device_id
    WHERE t.rollout_id = $1
)
SELECT wave, device_id AS id, state, reason, status, late, zone
FROM numbered WHERE k <= $2
ORDER BY wave, k
"""  # nosec B608
_STORED_COUNTS = f"""
SELECT t.wave, {target_state("t", "r")} AS state, count(*) AS n,
       count(*) FILTER (WHERE t.late) AS late
FROM rollout_targets AS t JOIN rollouts AS r ON r.id = t.rollout_id
WHERE t.rollout_id = $1
GROUP BY 1, 2
"""  # nosec B608
# The waves not written yet: who they would hold if they started now ($5 limit).
_PLACED = f"d.id, d.status, {DEVICE_ZONE} AS zone, w.wave, {RANK_KEY} AS rk"
_UNWRITTEN = by_form(
    lambda form: (
        f"""
WITH {reserving_cte("$1", "$2")}, plan AS (
    SELECT firsts, materialised FROM rollout_plans WHERE rollout_id = $1
), placed AS (
    {unwritten_candidates("$1", "$2", "$3", "$4", _PLACED, form)}
), numbered AS (
    SELECT wave, id, status, zone, count(*) OVER (PARTITION BY wave) AS n,
           row_number() OVER (PARTITION BY wave ORDER BY rk) AS k
    FROM placed
)
SELECT wave, id, status, zone, n FROM numbered WHERE k <= $5 ORDER BY wave, k
"""  # nosec B608
    )
)


async def rollout_plan(
    conn: Connection,
    target: PlanTarget,
    *,
    status: RolloutStatus,
    skip_offline: bool,
    limit: int,
    windows: PlanWindows | None = None,
) -> RolloutPlan:
    """The plan of a rollout: while draft, what starting it now would plan (a
    read-only, consistent preview: the waves with exact sizes and the excluded
    devices with their reason); once started, its targets by wave with their
    state (``excluded`` empty: exclusions were decided at the start).

    Args:
        conn: A connection, not in a transaction (a preview opens a read-only one).
        target: The rollout.
        status: Its status, echoed in the result; draft gives the preview.
        skip_offline: The effective skip_offline it starts (or runs) under: a
            preview's ``would_skip`` flags and ``offline`` exclusions.
        limit: Most devices listed per wave and per exclusion reason (>= 1);
            the counts are exact.
        windows: The policy's maintenance windows: each listed device shows
            its zone's window (open, when it next opens).
    """
    asked = _Asked(status, skip_offline, limit, windows or PlanWindows())
    show = _preview if status is RolloutStatus.DRAFT else _stored
    return await show(conn, target, asked)


class _Asked(NamedTuple):
    status: RolloutStatus
    skip_offline: bool
    limit: int
    windows: PlanWindows


async def _preview(conn: Connection, target: PlanTarget, asked: _Asked) -> RolloutPlan:
    status, skip_offline, limit, windows = asked
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        form = await planning_form(conn, target.rollout_id)
        n = await count_candidates(conn, target, form)
        bounds = wave_bounds(n, target.waves, target.wave_percentages)
        rows = (
            await conn.fetch(
                _PREVIEW[form], *plan_args(target), first_ranks(bounds), n, limit
            )
            if n
            else []
        )
        excluded_rows = await conn.fetch(
            _EXCLUDED, *plan_args(target), skip_offline, limit
        )
    sizes = [b - a for a, b in zip([0, *bounds], bounds, strict=False)]
    listed: dict[int, list[PlannedDevice]] = {w: [] for w in range(1, len(bounds) + 1)}
    online: dict[int, int] = {}
    shown = windows.of(rows)
    for r in rows:
        online[r["wave"]] = int(r["online"])
        listed[r["wave"]].append(
            PlannedDevice(
                device_id=r["id"],
                device_status=r["status"],
                would_skip=skip_offline and r["status"] != "online",
                **shown.get(r["id"], {}),
            )
        )
    waves = [
        PlanWave(
            wave=w,
            size=sizes[w - 1],
            states={
                "online": online.get(w, 0),
                "not_online": sizes[w - 1] - online.get(w, 0),
            },
            devices=listed[w],
            truncated=len(listed[w]) < sizes[w - 1],
        )
        for w in listed
    ]
    counts: dict[Exclusion, int] = {}
    excluded: list[PlanExclusion] = []
    for r in excluded_rows:
        reason = Exclusion(r["reason"])
        counts[reason] = int(r["n"])
        excluded.append(PlanExclusion(device_id=r["id"], reason=reason))
    return RolloutPlan(
        rollout_id=target.rollout_id,
        status=status,
        preview=True,
        total=n,
        skip_offline=skip_offline,
        waves=waves,
        excluded_counts=counts,
        excluded=excluded,
        excluded_truncated=len(excluded) < sum(counts.values()),
    )


async def _stored(conn: Connection, target: PlanTarget, asked: _Asked) -> RolloutPlan:
    status, skip_offline, limit, windows = asked
    counts: dict[int, dict[str, int]] = {w: {} for w in range(1, target.waves + 1)}
    late: dict[int, int] = {}
    for r in await conn.fetch(_STORED_COUNTS, target.rollout_id):
        counts.setdefault(r["wave"], {})[r["state"]] = int(r["n"])
        late[r["wave"]] = late.get(r["wave"], 0) + int(r["late"])
    listed: dict[int, list[PlannedDevice]] = {w: [] for w in counts}
    # Waves not written yet are shown as they would start now: pending, or
    # skipped once an abort made sure they never start.
    unwritten = (
        TargetState.SKIPPED if status is RolloutStatus.ABORTED else TargetState.PENDING
    )
    form = await planning_form(conn, target.rollout_id)
    later = await conn.fetch(_UNWRITTEN[form], *plan_args(target), limit)
    stored = await conn.fetch(_STORED, target.rollout_id, limit)
    shown = windows.of([*later, *stored])
    for r in later:
        counts[r["wave"]] = {unwritten.value: int(r["n"])}
        listed[r["wave"]].append(
            PlannedDevice(
                device_id=r["id"],
                device_status=r["status"],
                state=unwritten,
                **shown.get(r["id"], {}),
            )
        )
    for r in stored:
        listed[r["wave"]].append(
            PlannedDevice(
                device_id=r["id"],
                device_status=r["status"],
                state=r["state"],
                reason=r["reason"],
                late=r["late"],
                **shown.get(r["id"], {}),
            )
        )
    waves = [
        PlanWave(
            wave=w,
            size=sum(counts[w].values()),
            states=counts[w],
            devices=listed[w],
            truncated=len(listed[w]) < sum(counts[w].values()),
            late=late.get(w, 0),
        )
        for w in sorted(counts)
    ]
    return RolloutPlan(
        rollout_id=target.rollout_id,
        status=status,
        preview=False,
        total=sum(w.size for w in waves),
        skip_offline=skip_offline,
        waves=waves,
    )
