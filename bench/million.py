"""B6, a million-device fleet: heartbeats every 5 minutes, a reconnect burst,
and a 10-wave rollout to every device run to ``completed``.

The profile (``bench/run --only B6``): 1,000,000 devices provisioned by COPY,
one heartbeat every ``interval`` (300 s: 3,333 heartbeats per second on
average), a burst of ``burst_share`` of the fleet (10 %) each sending one extra
heartbeat within ``burst_window`` (30 s) at ``burst_at`` (the middle of the
run), and a ``waves``-wave rollout to all of them started once every device is
online. Devices learn of their wave from their next heartbeat's answer (no
desired polls), so a wave takes up to one interval to be heard: the run goes on
after ``minutes`` until the rollout is done, up to ``max_minutes``.

Every ``sample_every`` seconds: resident memory of api, ingest, scheduler and the
generator, the heartbeat queue's backlog and the accepted-but-uncommitted
heartbeats. Correct only when every answer was 2xx, every accepted heartbeat was
committed (``lost`` 0), the queues drained, every ``last_seq`` is the last
accepted seq, the backlog was back to 0 after the burst, and the rollout
``completed``. The line reports CPU µs per heartbeat by process (and the
generator's own CPU), p99 acceptance latency, backlog maximum, RSS by process
(start, end, max, slope over the second half), and per wave: the gate (the
previous wave's last outcome recorded) to the wave's start, and the start to its
devices being told (the generator's first "update" answer per device).

Scaled down for a quick run or a test: ``--devices 2000 --minutes 2
--b6-interval 10`` (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
import uuid
from typing import Any

from fleet import percentile
from procstat import cpu_seconds
from soak import (
    launch_fleet,
    per_heartbeat,
    rollout_completed,
    rollout_state,
    slope,
    start_rollout,
)
from stack import Stack, read_result

__all__ = ["million", "wave_timings"]

_WAVES = """
SELECT rr.wave, rr.started_at, prev.last_outcome
FROM rollout_runs AS rr
LEFT JOIN LATERAL (
    SELECT max(h.recorded_at) AS last_outcome FROM rollout_target_history AS h
    WHERE h.rollout_id = rr.rollout_id AND h.wave = rr.wave - 1
) AS prev ON true
WHERE rr.rollout_id = $1 AND rr.attempt = 1
ORDER BY rr.wave
"""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def wave_timings(
    stack: Stack, rid: str, told_at: dict[str, float]
) -> list[dict[str, Any]]:
    """Per wave: the gate (the previous wave's last recorded outcome) to the
    wave's start, and the start to its devices' first "update" answer."""
    db = await stack.db()
    runs = await db.fetch(_WAVES, uuid.UUID(rid))
    members = await db.fetch(
        "SELECT device_id, wave FROM rollout_targets WHERE rollout_id = $1",
        uuid.UUID(rid),
    )
    by_wave: dict[int, list[str]] = {}
    for m in members:
        by_wave.setdefault(m["wave"], []).append(m["device_id"])
    out = []
    for run in runs:
        wave, started = run["wave"], run["started_at"]
        line: dict[str, Any] = {"wave": wave}
        if started is None:
            out.append(line | {"started": False})
            continue
        start = started.timestamp()
        if run["last_outcome"] is not None:
            line["gate_to_start_ms"] = _ms(start - run["last_outcome"].timestamp())
        delays = [told_at[d] - start for d in by_wave.get(wave, []) if d in told_at]
        line |= {
            "devices": len(by_wave.get(wave, [])),
            "told": len(delays),
            "start_to_told_p50_s": _round(percentile(delays, 0.5)),
            "start_to_told_p99_s": _round(percentile(delays, 0.99)),
        }
        if "gate_to_start_ms" in line and delays:
            gate = run["last_outcome"].timestamp()
            line["gate_to_first_told_s"] = _round(min(delays) + start - gate)
        out.append(line)
    return out


def _gates(timings: list[dict[str, Any]]) -> list[float]:
    return [w["gate_to_start_ms"] for w in timings if "gate_to_start_ms" in w]


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


async def million(
    stack: Stack,
    *,
    devices: int = 1_000_000,
    minutes: float = 30.0,
    max_minutes: float | None = None,
    interval: float = 300.0,
    waves: int = 10,
    burst_share: float = 0.1,
    burst_window: float = 30.0,
    burst_at: float | None = None,
    sample_every: float = 5.0,
    connections: int = 256,
    b1: dict[str, float] | None = None,
    cache_ttl: float | None = None,
) -> dict[str, Any]:
    """Run B6; one result line (``ok`` false with a reason, and no figures,
    when a check fails). ``b1``: B1's CPU µs per heartbeat by process, printed
    beside (``per_heartbeat``)."""
    max_minutes = max_minutes or minutes + waves * interval / 60 + 5
    burst_at = minutes * 60 / 2 if burst_at is None else burst_at
    line: dict[str, Any] = {
        "bench": "B6_million",
        "devices": devices,
        "minutes": minutes,
        "interval_s": interval,
        "offered_heartbeats_per_s": round(devices / interval, 1),
        "waves": waves,
        "burst": {"share": burst_share, "window_s": burst_window, "at_s": burst_at},
        # As given to ingest (``--cache-ttl``); None: the service's default.
        "ingest_cache_ttl_s": cache_ttl,
    }
    run, created_s = await launch_fleet(
        stack,
        devices,
        "b6",
        interval=interval,
        seconds=max_minutes * 60,
        connections=connections,
        extra=(
            *("--burst-at", str(burst_at)),
            *("--burst-share", str(burst_share)),
            *("--burst-window", str(burst_window)),
        ),
    )
    proc = run.proc
    run.services["generator"] = proc.pid
    lookups0 = await stack.cache_lookups()
    generator_cpu0 = cpu_seconds(proc.pid) or 0.0
    rid: str | None = None
    state: dict[str, Any] = {}
    generator_cpu = 0.0
    while proc.poll() is None:
        elapsed = run.elapsed()
        if rid is None and await stack.online() >= devices:
            asked = time.perf_counter()
            rid = await start_rollout(stack, waves)
            line["rollout_started_at_s"] = round(elapsed, 1)
            # Create, then start: the start's answer counts the plan.
            line["rollout_start_answered_s"] = round(time.perf_counter() - asked, 2)
        elif rid is not None and state.get("status") not in {"completed", "failed"}:
            state = await rollout_state(stack, rid)
        if elapsed >= minutes * 60 and state.get("status") in {"completed", "failed"}:
            generator_cpu = (cpu_seconds(proc.pid) or 0.0) - generator_cpu0
            proc.send_signal(signal.SIGTERM)  # the fleet writes its result
            break
        await run.sample(stack)
        await asyncio.sleep(sample_every)
    if not generator_cpu:
        generator_cpu = (cpu_seconds(proc.pid) or generator_cpu0) - generator_cpu0
    code = await asyncio.to_thread(proc.wait)
    assert proc.stdout is not None
    proc.stdout.close()
    elapsed = run.elapsed()
    if code != 0:
        run.cpu.stop()
        return line | {"ok": False, "reason": f"fleet exited {code}"}
    result = read_result(run.out)
    lookups = await stack.cache_lookups()
    lookups = {k: v - lookups0[k] for k, v in lookups.items()}
    reasons = []
    if result["non_2xx"]:
        bad = {k: v for k, v in result["counts"].items() if k.split(" ")[1][0] != "2"}
        reasons.append(f"non-2xx or errors: {bad}")
    ok, reason, committed = await stack.drained(
        result["accepted"], run.committed_before, within=600
    )
    cpu_used = run.cpu.stop()
    if not ok:
        reasons.append(reason)
    else:
        seq_ok, seq_reason = await stack.seqs_match(result["accepted_seq"])
        if not seq_ok:
            reasons.append(seq_reason)
    burst_end = burst_at + burst_window
    after_burst = [(t, n) for t, n in run.backlog if t >= burst_end]
    back_to_zero = next((t for t, n in after_burst if n == 0), None)
    if after_burst and back_to_zero is None:
        reasons.append("the backlog did not return to 0 after the burst")
    if result.get("burst_heartbeats", 0) == 0 and burst_at < elapsed:
        reasons.append("no burst heartbeat was sent")
    state, why = await rollout_completed(stack, rid, elapsed)
    reasons += why
    # A run that fails a check still reports what it measured (an hour's run
    # that falls short says by how much and where), with ``ok`` false.
    if reasons:
        line |= {"ok": False, "reason": "; ".join(reasons)}
    timings = [] if rid is None else await wave_timings(stack, rid, result["told_at"])
    half = elapsed / 120
    accepted = result["accepted"]
    return line | {
        "ok": not reasons,
        "ran_minutes": round(elapsed / 60, 2),
        "accepted": accepted,
        "persisted": committed,
        "lost": max(0, accepted - int(committed)),
        "heartbeats_per_s": round(accepted / elapsed, 1),
        "burst_heartbeats": result["burst_heartbeats"],
        "heartbeat_p50_ms": result["heartbeat_p50_ms"],
        "heartbeat_p99_ms": result["heartbeat_p99_ms"],
        "fleet_lag_p99_ms": result["lag_p99_ms"],
        "backlog_max": max((n for _, n in run.backlog), default=0),
        "backlog_zero_after_burst_s": (
            None if back_to_zero is None else round(back_to_zero - burst_end, 1)
        ),
        "uncommitted_heartbeats_max": round(max(run.uncommitted, default=0)),
        "rss_mib": {
            k: {
                "start": round(v[0][1], 1),
                "end": round(v[-1][1], 1),
                "max": round(max(m for _, m in v), 1),
                "slope_second_half_mib_per_min": _round(
                    slope([p for p in v if p[0] >= half])
                ),
            }
            for k, v in run.rss.items()
            if v
        },
        "rollout": state,
        "applied": result["applied"],
        "waves_timing": timings,
        "cpu_seconds": {k.split(":")[0]: round(v, 1) for k, v in cpu_used.items()},
        **per_heartbeat(cpu_used, accepted, b1),
        "generator_cpu_seconds": round(generator_cpu, 1),
        "generator_cores": round(generator_cpu / elapsed, 3),
        "generator_us_per_request": round(
            generator_cpu / max(1, sum(result["counts"].values())) * 1e6, 1
        ),
        "system_cores": round(
            sum(v for k, v in cpu_used.items() if k != "postgres_backends") / elapsed,
            3,
        ),
        "devices_created_s": round(created_s, 1),
        # Ingest's identity cache over the run: a miss is a database read.
        "cache_lookups": lookups,
        "cache_hit_ratio": _round(lookups["hit"] / max(1.0, sum(lookups.values()))),
        "gate_to_start_ms_median": _round(
            statistics.median(gates) if (gates := _gates(timings)) else None
        ),
    }
