"""B5, the soak: a large fleet heartbeating for minutes while a 5-wave rollout runs.

Claims ``devices`` devices through the api, registers an artifact and starts a
5-wave rollout of it, then runs the fleet simulator (one heartbeat a minute per
device, simulated applies that report the new version after 5 s) for
``minutes``. Every 5 s it samples each service's resident memory (``VmRSS``),
the heartbeat queue's backlog (ready messages) and the heartbeats ingest
accepted that the scheduler has not committed yet (queued, prefetched or being
written: ``uncommitted_heartbeats_*``). At the end: every accepted heartbeat committed,
the backlog back to 0, nothing dead-lettered, every device's ``last_seq`` its
last accepted seq, and each service's memory slope (least squares, MiB/min):
``rss_slope_mib_per_min`` over the second half of the run, when every device
has reported and ingest's identity cache holds the fleet (it fills during the
first heartbeat interval, up to ``XDP47_INGEST_CACHE_SIZE`` entries, by design),
and ``rss_slope_after_first_minute`` over everything after the first minute.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fleet import HW, Device, claim_devices, save_devices
from procstat import CpuGroups, rss_mib
from stack import Stack, read_result

from xdp47_common.tokens import SecretKind, hash_secret, new_secret

__all__ = [
    "FleetRun",
    "create_devices",
    "launch_fleet",
    "per_heartbeat",
    "provision",
    "rollout_completed",
    "rollout_state",
    "slope",
    "soak",
    "start_rollout",
]

SAMPLE_EVERY = 5.0
INTERVAL = 60.0
# Claiming through the api runs at ~100-300 devices/s here (each claim is a
# request and a transaction): 100,000 would take 5-15 minutes. Above this size the
# soak provisions devices with one COPY instead (same rows, same credentials).
CLAIM_LIMIT = 5000


def per_heartbeat(
    cpu: dict[str, float], accepted: int, b1: dict[str, float] | None
) -> dict[str, Any]:
    """CPU µs per accepted heartbeat by process, PostgreSQL's beside B1's.

    ``postgres_backends`` is the backends of the stack's own database connections
    (the statements of ingest, scheduler and api: reconcile, gates, heartbeat
    writes); ``postgres`` adds the server's own processes (WAL writer,
    checkpointer ...), which other load on a shared server uses too.
    """
    if not accepted:
        return {"us_per_heartbeat": None}
    us = {k.split(":")[0]: round(v / accepted * 1e6, 1) for k, v in cpu.items()}
    line: dict[str, Any] = {
        "us_per_heartbeat": us,
        "pg_us_per_heartbeat": us.get("postgres_backends"),
        "b1_pg_us_per_heartbeat": None,
        "pg_over_b1": None,
    }
    b1_pg = (b1 or {}).get("postgres")
    if b1_pg:
        line["b1_pg_us_per_heartbeat"] = b1_pg
        line["pg_over_b1"] = round(us.get("postgres", 0.0) / b1_pg, 2)
    return line


async def provision(stack: Stack, n: int, prefix: str) -> list[Device]:
    """Insert ``n`` devices with fresh credentials in one COPY (what a claim
    writes: id, labels, channel, the credential's hash)."""
    devices = [
        Device(f"{prefix}-{i:08d}", new_secret(SecretKind.DEVICE_CREDENTIAL))
        for i in range(n)
    ]
    db = await stack.db()
    await db.copy_records_to_table(
        "devices",
        records=[
            (
                stack.cp.tenant,
                d.id,
                f'{{"hw": "{HW[i % 4]}"}}',
                "stable",
                hash_secret(d.credential),
            )
            for i, d in enumerate(devices)
        ],
        columns=["tenant", "id", "labels", "channel", "credential_hash"],
    )
    await db.execute("ANALYZE devices")
    return devices


async def create_devices(stack: Stack, n: int, prefix: str) -> list[Device]:
    """``n`` devices of the stack's tenant: claimed through the api up to
    ``CLAIM_LIMIT``, provisioned by COPY above."""
    if n <= CLAIM_LIMIT:
        return await claim_devices(
            stack.cp.api_url,
            stack.cp.token,
            stack.cp.tenant,
            n,
            prefix=prefix,
            concurrency=64,
        )
    return await provision(stack, n, prefix)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y) points; None with fewer than 3."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


async def start_rollout(stack: Stack, waves: int = 5) -> str:
    """Register an artifact and start a ``waves``-wave rollout of it to every
    device of the stack's tenant; its id. The start's answer carries the plan's
    counts, computed over the whole fleet: at a million devices on a busy
    machine it takes longer than httpx's default 5 s."""
    cp = stack.cp
    async with httpx.AsyncClient(
        base_url=cp.api_url, headers=cp.auth, timeout=httpx.Timeout(120, connect=10)
    ) as api:
        artifact = await api.post(
            "/api/artifacts",
            json={
                "tenant": cp.tenant,
                "uri": "https://artifacts.invalid/app-2.0.0.bin",
                "sha256": "ab" * 32,
                "version": "2.0.0",
                "size": 1024,
            },
        )
        artifact.raise_for_status()
        rollout = await api.post(
            "/api/rollouts",
            json={
                "tenant": cp.tenant,
                "artifact_id": artifact.json()["id"],
                "waves": waves,
                "name": "soak",
            },
        )
        rollout.raise_for_status()
        rid = str(rollout.json()["id"])
        (await api.post(f"/api/rollouts/{rid}:start")).raise_for_status()
        return rid


async def rollout_state(stack: Stack, rid: str) -> dict[str, Any]:
    cp = stack.cp
    async with httpx.AsyncClient(base_url=cp.api_url, headers=cp.auth) as api:
        body = (await api.get(f"/api/rollouts/{rid}")).json()
    keep = ("status", "current_wave", "waves")
    return {k: body[k] for k in keep if k in body}


async def rollout_completed(
    stack: Stack, rid: str | None, elapsed: float
) -> tuple[dict[str, Any], list[str]]:
    """The rollout's state, and why it is not ``completed`` (empty: it is)."""
    if rid is None:
        return {}, ["the rollout never started (not every device came online)"]
    state = await rollout_state(stack, rid)
    if state.get("status") != "completed":
        return state, [f"rollout not completed in {elapsed / 60:.1f} min: {state}"]
    return state, []


@dataclass
class FleetRun:
    """A fleet simulator heartbeating against the stack's default ingest, and
    what is sampled while it runs (``sample``)."""

    proc: subprocess.Popen[str]
    out: Path  # the simulator's result file
    committed_before: float
    accepted_before: float
    services: dict[str, int]  # processes whose memory is sampled, by name
    cpu: CpuGroups  # started at the simulator's first request
    started: float  # time.monotonic() then
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (s, ready)
    # Accepted by ingest, not yet committed by the scheduler: the queue's ready
    # messages plus what the consumer has prefetched or is writing.
    uncommitted: list[float] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def sample(self, stack: Stack) -> None:
        """Each service's resident memory (at minutes), the heartbeat queue's
        backlog and the uncommitted heartbeats (at seconds)."""
        elapsed = self.elapsed()
        for name, pid in self.services.items():
            mib = rss_mib(pid)
            if mib is not None:
                self.rss.setdefault(name, []).append((elapsed / 60, mib))
        ready, _ = await stack.depth()
        self.backlog.append((elapsed, ready))
        accepted = await stack.accepted() - self.accepted_before
        committed = await stack.committed() - self.committed_before
        self.uncommitted.append(max(0.0, accepted - committed))


async def launch_fleet(
    stack: Stack,
    devices: int,
    tag: str,
    *,
    interval: float,
    seconds: float,
    connections: int,
    extra: tuple[str, ...] = (),
) -> tuple[FleetRun, float]:
    """Create ``devices`` devices, start ``fleet.py run`` of them (simulated
    applies after 5 s) and wait for its first request.

    Returns:
        The run, and the seconds creating the devices took.
    """
    created = time.perf_counter()
    fleet = await create_devices(stack, devices, tag)
    created_s = time.perf_counter() - created
    path = stack.workdir / f"devices-{tag}.json"
    save_devices(fleet, path)
    del fleet
    out = stack.workdir / f"fleet-{tag}-{uuid.uuid4().hex[:6]}.json"
    committed_before = await stack.committed()
    accepted_before = await stack.accepted()
    services = stack.service_pids()
    cpu = await stack.cpu_groups(["batched"], backends=True)
    proc = stack.run_fleet(
        stack.urls["batched"],
        path,
        out,
        interval=interval,
        seconds=seconds,
        apply_delay=5,
        connections=connections,
        extra=extra,
    )
    assert proc.stdout is not None
    await asyncio.to_thread(proc.stdout.readline)
    cpu.start()
    run = FleetRun(
        proc,
        out,
        committed_before,
        accepted_before,
        services,
        cpu,
        time.monotonic(),
    )
    return run, created_s


async def soak(
    stack: Stack,
    *,
    devices: int,
    minutes: float,
    b1: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run B5; one result line. ``b1``: B1's CPU µs per heartbeat by process
    (batched), when B1 ran in the same ``bench/run``, to print beside the soak's."""
    how = "claimed through the api" if devices <= CLAIM_LIMIT else "provisioned by COPY"
    run, claim_seconds = await launch_fleet(
        stack, devices, "soak", interval=INTERVAL, seconds=minutes * 60, connections=128
    )
    proc, rid = run.proc, None
    waves_seen: list[dict[str, Any]] = []
    while proc.poll() is None:
        # The rollout starts once every device has heartbeated (is online).
        if rid is None and run.elapsed() > INTERVAL + 5:
            rid = await start_rollout(stack)
        await run.sample(stack)
        if rid is not None and len(run.backlog) % 6 == 0:
            waves_seen.append(await rollout_state(stack, rid))
        await asyncio.sleep(SAMPLE_EVERY)
    code = proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    line: dict[str, Any] = {"bench": "B5_soak", "devices": devices, "minutes": minutes}
    if code != 0:
        return line | {"ok": False, "reason": f"fleet exited {code}"}
    result = read_result(run.out)
    ok, reason = result["non_2xx"] == 0, ""
    if not ok:
        bad = {k: v for k, v in result["counts"].items() if k.split(" ")[1][0] != "2"}
        reason = f"non-2xx or errors: {bad}"
    committed = 0.0
    if ok:
        ok, reason, committed = await stack.drained(
            result["accepted"], run.committed_before, within=300
        )
    if ok:
        ok, reason = await stack.seqs_match(result["accepted_seq"])
    final_backlog, dead = await stack.depth()
    cpu_used = run.cpu.stop()
    if not ok:
        return line | {"ok": False, "reason": reason}
    half = minutes / 2
    slopes = {
        name: slope([p for p in points if p[0] >= half])
        for name, points in run.rss.items()
    }
    early = {
        name: slope([p for p in points if p[0] >= 1.0])
        for name, points in run.rss.items()
    }
    elapsed = run.elapsed()
    return line | {
        "ok": True,
        "accepted": result["accepted"],
        "persisted": committed,
        "lost": max(0, result["accepted"] - int(committed)),
        "heartbeats_per_s": round(result["accepted"] / (minutes * 60), 1),
        "non_2xx": 0,
        "backlog_max": max((n for _, n in run.backlog), default=0),
        "backlog_final": final_backlog,
        "uncommitted_heartbeats_max": round(max(run.uncommitted, default=0)),
        "uncommitted_heartbeats_final": round(
            max(0.0, await stack.accepted() - run.accepted_before - committed)
        ),
        "dead_lettered": dead,
        "rss_mib_start_end": {
            k: [round(v[0][1], 1), round(v[-1][1], 1)] for k, v in run.rss.items() if v
        },
        "rss_slope_mib_per_min": {
            k: None if v is None else round(v, 3) for k, v in slopes.items()
        },
        "rss_slope_after_first_minute": {
            k: None if v is None else round(v, 3) for k, v in early.items()
        },
        "heartbeat_p99_ms": result["heartbeat_p99_ms"],
        "fleet_lag_p99_ms": result["lag_p99_ms"],
        "applied": result["applied"],
        "rollout": None if rid is None else await rollout_state(stack, rid),
        "rollout_samples": waves_seen[-3:],
        "cpu_seconds": {k.split(":")[0]: round(v, 1) for k, v in cpu_used.items()},
        "cores_used": round(
            sum(v for k, v in cpu_used.items() if k != "postgres_backends") / elapsed,
            3,
        ),
        **per_heartbeat(cpu_used, result["accepted"], b1),
        "devices_created": how,
        "devices_created_per_s": round(devices / claim_seconds, 1),
    }
