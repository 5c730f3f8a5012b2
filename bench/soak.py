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
import time
import uuid
from typing import Any

import httpx
from fleet import HW, Device, claim_devices, save_devices
from procstat import rss_mib
from stack import Stack, read_result

from xdp47_common.tokens import SecretKind, hash_secret, new_secret

__all__ = [
    "create_devices",
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
    device of the stack's tenant; its id."""
    cp = stack.cp
    async with httpx.AsyncClient(base_url=cp.api_url, headers=cp.auth) as api:
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


async def soak(
    stack: Stack,
    *,
    devices: int,
    minutes: float,
    b1: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run B5; one result line. ``b1``: B1's CPU µs per heartbeat by process
    (batched), when B1 ran in the same ``bench/run``, to print beside the soak's."""
    claim_started = time.perf_counter()
    how = "claimed through the api" if devices <= CLAIM_LIMIT else "provisioned by COPY"
    fleet = await create_devices(stack, devices, "soak")
    claim_seconds = time.perf_counter() - claim_started
    path = stack.workdir / "devices-soak.json"
    save_devices(fleet, path)
    rid: str | None = None
    out = stack.workdir / f"fleet-soak-{uuid.uuid4().hex[:6]}.json"
    before = await stack.committed()
    services = stack.service_pids()
    cpu = await stack.cpu_groups(["batched"], backends=True)
    proc = stack.run_fleet(
        stack.urls["batched"],
        path,
        out,
        interval=INTERVAL,
        seconds=minutes * 60,
        apply_delay=5,
        connections=128,
    )
    assert proc.stdout is not None
    await asyncio.to_thread(proc.stdout.readline)
    cpu.start()
    started = time.monotonic()
    rss: dict[str, list[tuple[float, float]]] = {k: [] for k in services}
    backlog: list[int] = []
    # Accepted by ingest, not yet committed by the scheduler: the queue's ready
    # messages plus what the consumer has prefetched or is writing.
    uncommitted: list[float] = []
    accepted_before = await stack.accepted()
    waves_seen: list[dict[str, Any]] = []
    while proc.poll() is None:
        # The rollout starts once every device has heartbeated (is online).
        if rid is None and time.monotonic() - started > INTERVAL + 5:
            rid = await start_rollout(stack)
        at = (time.monotonic() - started) / 60
        for name, pid in services.items():
            mib = rss_mib(pid)
            if mib is not None:
                rss[name].append((at, mib))
        ready, _ = await stack.depth()
        backlog.append(ready)
        accepted_now = await stack.accepted() - accepted_before
        uncommitted.append(max(0.0, accepted_now - (await stack.committed() - before)))
        if rid is not None and len(backlog) % 6 == 0:
            waves_seen.append(await rollout_state(stack, rid))
        await asyncio.sleep(SAMPLE_EVERY)
    code = proc.wait()
    proc.stdout.close()
    line: dict[str, Any] = {"bench": "B5_soak", "devices": devices, "minutes": minutes}
    if code != 0:
        return line | {"ok": False, "reason": f"fleet exited {code}"}
    result = read_result(out)
    ok, reason = result["non_2xx"] == 0, ""
    if not ok:
        bad = {k: v for k, v in result["counts"].items() if k.split(" ")[1][0] != "2"}
        reason = f"non-2xx or errors: {bad}"
    committed = 0.0
    if ok:
        ok, reason, committed = await stack.drained(
            result["accepted"], before, within=300
        )
    if ok:
        ok, reason = await stack.seqs_match(result["accepted_seq"])
    final_backlog, dead = await stack.depth()
    cpu_used = cpu.stop()
    if not ok:
        return line | {"ok": False, "reason": reason}
    half = minutes / 2
    slopes = {
        name: slope([p for p in points if p[0] >= half]) for name, points in rss.items()
    }
    early = {
        name: slope([p for p in points if p[0] >= 1.0]) for name, points in rss.items()
    }
    elapsed = time.monotonic() - started
    return line | {
        "ok": True,
        "accepted": result["accepted"],
        "persisted": committed,
        "lost": max(0, result["accepted"] - int(committed)),
        "heartbeats_per_s": round(result["accepted"] / (minutes * 60), 1),
        "non_2xx": 0,
        "backlog_max": max(backlog, default=0),
        "backlog_final": final_backlog,
        "uncommitted_heartbeats_max": round(max(uncommitted, default=0)),
        "uncommitted_heartbeats_final": round(
            max(0.0, await stack.accepted() - accepted_before - committed)
        ),
        "dead_lettered": dead,
        "rss_mib_start_end": {
            k: [round(v[0][1], 1), round(v[-1][1], 1)] for k, v in rss.items() if v
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
