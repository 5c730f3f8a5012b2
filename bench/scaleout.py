"""Scale-out: two ingest and two scheduler processes on one broker and one database.

Starts a second ``xdp47-ingest`` and a second ``xdp47-scheduler`` beside the
stack's own (same database, same AMQP namespace: the two schedulers consume the
one heartbeat queue and reconcile the same rollouts), splits the fleet in two
halves, one per ingest (what a load balancer in front of the replicas does), and
runs a ``waves``-wave rollout to every device to its end while the fleet
heartbeats. The rollout starts once every device has heartbeated (is online).

Correct only when nothing is lost or applied twice:

- every fleet answer 2xx; the heartbeats both schedulers committed add up to
  exactly the heartbeats both ingests accepted (none lost, none committed twice),
  the queue and its dead-letter queue empty, and every device's ``last_seq`` its
  last accepted seq;
- each wave started once (one ``rollout.wave_started`` audit record per wave,
  and the two schedulers' ``xdp47_scheduler_waves_started_total`` add up to the
  wave count);
- each device's outcome recorded once (no device with two ``applied`` rows in
  ``rollout_target_history`` for the same attempt);
- the rollout ``completed``, as a single-process run ends.

The line reports each process's share: of the heartbeats accepted (ingests),
committed (schedulers), and of its service's CPU seconds, plus CPU µs per
heartbeat by process.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fleet import save_devices
from soak import create_devices, rollout_completed, rollout_state, start_rollout
from stack import Stack, read_result

__all__ = ["scale_out"]

_WAVES = "xdp47_scheduler_waves_started_total"


async def _waves_started(url: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(_WAVES + " "):
            return float(line.split()[1])
    return 0.0


def _shares(values: dict[str, float]) -> dict[str, float]:
    total = sum(values.values())
    return {k: round(v / total, 3) if total else 0.0 for k, v in values.items()}


async def _once_checks(stack: Stack, rid: str, waves: int) -> list[str]:
    """What was applied twice, if anything (empty: nothing)."""
    db = await stack.db()
    problems = []
    started = await db.fetch(
        "SELECT detail->>'wave' AS wave, count(*) AS n FROM audit_records "
        "WHERE rollout_id = $1 AND action = 'rollout.wave_started' GROUP BY 1",
        uuid.UUID(rid),
    )
    counts = {int(r["wave"]): r["n"] for r in started}
    if counts != dict.fromkeys(range(1, waves + 1), 1):
        problems.append(f"wave_started audit records by wave: {counts}")
    twice = await db.fetchval(
        "SELECT count(*) FROM (SELECT device_id FROM rollout_target_history "
        "WHERE rollout_id = $1 AND state = 'applied' "
        "GROUP BY device_id, attempt HAVING count(*) > 1) AS t",
        uuid.UUID(rid),
    )
    if twice:
        problems.append(f"{twice} devices with two applied outcomes")
    return problems


async def scale_out(
    stack: Stack,
    *,
    devices: int = 2000,
    interval: float = 2.0,
    seconds: float = 60.0,
    waves: int = 3,
    connections: int = 32,
) -> dict[str, Any]:
    """Run the two-process benchmark; one result line (``ok`` false with a
    reason when a check fails, and no figures)."""
    line: dict[str, Any] = {
        "bench": "scale_out",
        "devices": devices,
        "seconds": seconds,
        "waves": waves,
    }
    ingest_b = stack.add_ingest("b")
    sched_b, sched_b_url = stack.add_scheduler("b")
    ingests = {"a": stack.cp.ingest_url, "b": ingest_b}
    schedulers = {"a": stack.cp.scheduler_url, "b": sched_b_url}
    fleet = await create_devices(stack, devices, "scale")
    halves = {"a": fleet[: devices // 2], "b": fleet[devices // 2 :]}

    async def committed() -> float:
        return sum([await stack.committed_by(u) for u in schedulers.values()])

    before_by = {k: await stack.committed_by(u) for k, u in schedulers.items()}
    before = sum(before_by.values())
    waves_before = sum([await _waves_started(u) for u in schedulers.values()])
    stack.ingests["a"] = stack.cp.ingest
    cpu = await stack.cpu_groups(
        ["a", "b"],
        backends=True,
        schedulers={"a": stack.cp.scheduler.pid, "b": sched_b.pid},
    )
    outs: dict[str, Path] = {}
    procs = {}
    for name, half in halves.items():
        path = stack.workdir / f"devices-scale-{name}.json"
        save_devices(half, path)
        outs[name] = stack.workdir / f"fleet-scale-{name}-{uuid.uuid4().hex[:6]}.json"
        procs[name] = stack.run_fleet(
            ingests[name],
            path,
            outs[name],
            interval=interval,
            seconds=seconds,
            apply_delay=1,
            connections=connections,
        )
    for proc in procs.values():
        assert proc.stdout is not None
        await asyncio.to_thread(proc.stdout.readline)
    cpu.start()
    started = time.monotonic()
    rid: str | None = None
    state: dict[str, Any] = {}
    while any(p.poll() is None for p in procs.values()):
        if rid is None:
            if await stack.online() >= devices:
                rid = await start_rollout(stack, waves)
        elif state.get("status") != "completed":
            state = await rollout_state(stack, rid)
        await asyncio.sleep(0.5)
    codes = {k: p.wait() for k, p in procs.items()}
    for p in procs.values():
        if p.stdout is not None:
            p.stdout.close()
    if any(codes.values()):
        cpu.stop()
        return line | {"ok": False, "reason": f"fleet exit codes {codes}"}
    results = {k: read_result(out) for k, out in outs.items()}
    accepted = {k: int(r["accepted"]) for k, r in results.items()}
    total = sum(accepted.values())
    reasons = [
        f"fleet {k}: non-2xx or errors {r['counts']}"
        for k, r in results.items()
        if r["non_2xx"]
    ]
    ok, reason, persisted = await stack.drained(
        total, before, within=120, committed_by=committed
    )
    cpu_used = cpu.stop()
    if not ok:
        reasons.append(reason)
    elif persisted != total:
        reasons.append(f"committed {persisted:.0f} heartbeats for {total} accepted")
    seqs: dict[str, int] = {}
    for r in results.values():
        seqs |= r["accepted_seq"]
    seq_ok, seq_reason = await stack.seqs_match(seqs)
    if not seq_ok:
        reasons.append(seq_reason)
    state, why = await rollout_completed(stack, rid, time.monotonic() - started)
    reasons += why
    if rid is not None:
        reasons += await _once_checks(stack, rid, waves)
        started_waves = sum([await _waves_started(u) for u in schedulers.values()])
        if started_waves - waves_before != waves:
            reasons.append(
                f"schedulers counted {started_waves - waves_before:.0f} wave starts "
                f"for {waves} waves"
            )
    if reasons:
        return line | {"ok": False, "reason": "; ".join(reasons)}
    committed_by = {
        k: await stack.committed_by(u) - before_by[k] for k, u in schedulers.items()
    }
    elapsed = time.monotonic() - started
    cpu_s = {k: round(v, 2) for k, v in cpu_used.items()}
    return line | {
        "ok": True,
        "accepted": total,
        "persisted": int(persisted),
        "lost": 0,
        "applied": sum(int(r["applied"]) for r in results.values()),
        "heartbeats_per_s": round(total / elapsed, 1),
        "rollout": state,
        "ingest_heartbeat_share": _shares({k: float(v) for k, v in accepted.items()}),
        "scheduler_heartbeat_share": _shares(committed_by),
        "ingest_cpu_share": _shares({k: cpu_used[f"ingest:{k}"] for k in ingests}),
        "scheduler_cpu_share": _shares(
            {k: cpu_used[f"scheduler:{k}"] for k in schedulers}
        ),
        "cpu_seconds": cpu_s,
        "us_per_heartbeat": {k: round(v / total * 1e6, 1) for k, v in cpu_used.items()},
        "heartbeat_p99_ms": max(r["heartbeat_p99_ms"] for r in results.values()),
    }
