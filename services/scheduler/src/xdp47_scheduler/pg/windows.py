"""Maintenance windows kept per (rollout, zone), and the deadline they move.

The desired state tells a device of a rollout with windows only while the row
of its zone in ``rollout_windows`` says ``open`` (``xdp47_common.adapters.
desired``). The timer keeps those rows (``refresh_windows``): one per zone
``zoneinfo`` knows plus '' (the tenant's default zone), computed by the pure
``xdp47_common.rollout.windows`` per zone, never per device, and recomputed only
when due (``changes_at`` passed, the wave or the tenant's default changed). A
flip of ``open`` notifies ingest (migration 0026), so cached answers follow.

A wave's deadline counts, for a rollout with windows, from the latest first
opening among the zones of its devices still updating (``deadline_from``);
while one of those zones has not opened since the wave started, the wave does
not time out.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from xdp47_common.adapters.desired import DEVICE_ZONE
from xdp47_common.adapters.planning import Connection
from xdp47_common.rollout.windows import (
    first_open_at,
    offsets_between,
    parse_windows,
    resolve_zone,
    window_state,
    zone_names,
)

__all__ = ["deadline_from", "refresh_windows"]

# The zone key of ``devices AS d``: what it reports, else its label, else ''.
ZONE_KEY = DEVICE_ZONE


_WINDOWED = """
SELECT r.id, r.tenant, r.effective_policy->'maintenance_windows' AS windows,
       r.current_wave_started_at AS wave_started,
       coalesce(t.default_timezone, 'UTC') AS default_zone,
       (SELECT count(*) FROM rollout_windows AS w WHERE w.rollout_id = r.id) AS rows
FROM rollouts AS r JOIN tenants AS t ON t.id = r.tenant
WHERE r.status = 'running' AND r.windowed
"""

# The rows whose state may have changed: due, another wave, another default.
_DUE = """
SELECT zone FROM rollout_windows
WHERE rollout_id = $1
  AND (changes_at IS NULL OR changes_at <= $2
       OR wave_started IS DISTINCT FROM $3::timestamptz
       OR (zone = '' AND resolved <> $4))
"""

_UPSERT = """
INSERT INTO rollout_windows AS w (rollout_id, zone, tenant, open, since,
    changes_at, next_open, wave_started, wave_opened, resolved)
SELECT $1, z.zone, $2, z.open, z.since, z.changes_at, z.next_open, $3,
       z.wave_opened, z.resolved
FROM unnest($4::text[], $5::boolean[], $6::timestamptz[], $7::timestamptz[],
            $8::timestamptz[], $9::timestamptz[], $10::text[])
     AS z(zone, open, since, changes_at, next_open, wave_opened, resolved)
ON CONFLICT (rollout_id, zone) DO UPDATE SET
    open = EXCLUDED.open, since = EXCLUDED.since,
    changes_at = EXCLUDED.changes_at, next_open = EXCLUDED.next_open,
    wave_started = EXCLUDED.wave_started, wave_opened = EXCLUDED.wave_opened,
    resolved = EXCLUDED.resolved
"""

_ALL_ZONES = ("", *sorted(zone_names()))
# Beyond the 15 days the window arithmetic looks ahead and back.
_SPAN = timedelta(days=16)


def _windows(value: Any) -> list[str]:
    raw = json.loads(value) if isinstance(value, str) else value
    return [str(w) for w in raw or ()]


async def refresh_windows(conn: Connection, now: datetime) -> int:
    """Recompute the due window rows of every running rollout with windows;
    how many rows were written."""
    written = 0
    for r in await conn.fetch(_WINDOWED):
        windows = parse_windows(_windows(r["windows"]))
        if not windows:
            continue
        if r["rows"] < len(_ALL_ZONES):
            zones: list[str] = list(_ALL_ZONES)
        else:
            zones = [
                z["zone"]
                for z in await conn.fetch(
                    _DUE, r["id"], now, r["wave_started"], r["default_zone"]
                )
            ]
        if not zones:
            continue
        cols: list[list[Any]] = [[] for _ in range(7)]
        started = r["wave_started"]
        span = (min(now, started or now) - _SPAN, max(now, started or now) + _SPAN)
        computed: dict[tuple[object, ...], tuple[Any, ...]] = {}
        for name in zones:
            zone = resolve_zone(name or None, r["default_zone"])
            # Zones whose offsets agree over the span share their states.
            key = offsets_between(zone, *span)
            if key not in computed:
                state = window_state(windows, zone, now)
                opened = (
                    None if started is None else first_open_at(windows, zone, started)
                )
                computed[key] = (
                    state.open,
                    state.since,
                    state.changes_at,
                    state.next_open,
                    opened,
                )
            values = (name, *computed[key], str(zone))
            for col, value in zip(cols, values, strict=True):
                col.append(value)
        await conn.execute(_UPSERT, r["id"], r["tenant"], r["wave_started"], *cols)
        written += len(zones)
    return written


# The latest first opening among the zones of the current wave's devices still
# updating, and whether one of them has not opened yet (or its row predates the
# wave). Per distinct zone key, so the window rows are probed once per zone.
_DEADLINE_FROM = f"""
WITH zones AS (
    SELECT DISTINCT {ZONE_KEY} AS zone
    FROM rollout_targets AS t
    JOIN devices AS d ON d.tenant = t.tenant AND d.id = t.device_id
    WHERE t.rollout_id = $1 AND t.wave = $2 AND t.active
      AND t.state IN ('pending', 'assigned')
), opened AS (
    SELECT (SELECT CASE WHEN w.wave_started IS DISTINCT FROM $3::timestamptz
                        THEN NULL ELSE w.wave_opened END
            FROM rollout_windows AS w
            WHERE w.rollout_id = $1 AND w.zone IN (z.zone, '')
            ORDER BY w.zone = '' LIMIT 1) AS at
    FROM zones AS z
)
SELECT bool_or(at IS NULL OR at > $4) AS waiting, max(at) AS latest FROM opened
"""  # nosec B608 (constants only)


async def deadline_from(
    conn: Connection, rollout_id: UUID, wave: int, started_at: datetime, now: datetime
) -> tuple[bool, datetime | None]:
    """(whether a device of the wave still waits for its window to open, the
    latest first opening among the wave's devices still updating)."""
    row = await conn.fetchrow(_DEADLINE_FROM, rollout_id, wave, started_at, now)
    if row is None:
        return False, None
    return bool(row["waiting"]), row["latest"]
