"""The benchmark runner behind ``bench/run``: B1-B7, SCALE (two ingest and two
scheduler processes: ``scaleout.py``) and CACHE (bytes per device in ingest's
identity cache: ``cache_memory.py``), one JSON line each.

Starts the system under test (``stack.open_stack``: fresh database, unique AMQP
namespace, real processes pinned to CPU 0), generates load with the fleet
simulator in a separate process on CPU 1, measures each variant in interleaved
rounds (the order rotates every round), and reads the CPU time of every process
under test from ``/proc``. A run counts only when it is correct: no non-2xx and
no transport error, every accepted heartbeat committed by the scheduler, the
queue drained, nothing dead-lettered, each device's ``last_seq`` equal to its
highest accepted seq. Otherwise its line says ``"ok": false`` with the reason and
carries no figure.

    bench/run                       # B1-B5, B7, SCALE, CACHE with default sizes
    bench/run --only B6             # a million devices: an hour, a quiet machine
    bench/run --only B1,B2 --rounds 5
    bench/run --only B5 --devices 100000 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysed import ANALYSIS_VARIANTS, analysed_fleets
from fleet import claim_devices, save_devices
from million import million
from otlp_sink import OtlpSink
from scaleout import scale_out
from soak import soak
from stack import BENCH, Stack, open_stack, read_result

__all__ = ["Load", "bench_heartbeats", "bench_polls", "main", "measure", "run_script"]

DB_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
B1_TARGET, B1_RATIO_TARGET, B2_TARGET = 5000, 0.6, 10_000
# The telemetry analysis may cost at most this share of B1's CPU per heartbeat.
ANALYSIS_COST_TARGET = 0.10
# The HTTP servers ingest can run on (``XDP47_INGEST_SERVER``).
SERVERS = ("uvicorn", "granian")
SHARED = (
    "broker and postgres are shared system servers: their CPU in the window "
    "includes any other load on them"
)


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def seq_base() -> int:
    """A seq above any earlier run's: milliseconds since the epoch x 1000."""
    return int(time.time() * 1000) * 1000


async def measure(
    stack: Stack,
    variant: str,
    fleet_args: list[str],
    devices_file: Path,
    *,
    groups: list[str],
    persisted: bool,
) -> dict[str, Any]:
    """One fleet run against ``variant``; CPU of ``groups`` (``ingest`` is the
    variant's process) from the first request until drained; checks."""
    out = stack.workdir / f"fleet-{variant}-{uuid.uuid4().hex[:6]}.json"
    before = await stack.committed() if persisted else 0.0
    cpu = await stack.cpu_groups([variant])
    names = {"ingest": f"ingest:{variant}"}
    proc = stack.fleet(
        "run",
        "--ingest",
        stack.urls[variant],
        "--devices-file",
        str(devices_file),
        "--seq-base",
        str(seq_base()),
        *fleet_args,
        out=out,
    )
    assert proc.stdout is not None
    await asyncio.to_thread(proc.stdout.readline)  # {"event": "started"}
    cpu.start()
    started = time.perf_counter()
    code = await asyncio.to_thread(proc.wait)
    proc.stdout.close()
    load_seconds = time.perf_counter() - started
    if code != 0:
        return {"ok": False, "reason": f"fleet exited {code}"}
    result = read_result(out)
    ok, reason = result["non_2xx"] == 0, ""
    if not ok:
        bad = {k: v for k, v in result["counts"].items() if k.split(" ")[1][0] != "2"}
        reason = f"non-2xx or errors: {bad}"
    committed = 0.0
    if persisted and ok:
        ok, reason, committed = await stack.drained(result["accepted"], before)
        if ok:
            ok, reason = await stack.seqs_match(result["accepted_seq"])
    deltas = cpu.stop()
    spent = {names.get(g, g): deltas[names.get(g, g)] for g in groups}
    return {
        "ok": ok,
        "reason": reason,
        "accepted": result["accepted"],
        "polls": result["polls"],
        "committed": committed,
        "counts": result["counts"],
        "cpu": {k.split(":")[0]: round(v, 3) for k, v in spent.items()},
        "cpu_total": sum(spent.values()),
        "load_seconds": load_seconds,
        "p99_ms": result["heartbeat_p99_ms"] or result["poll_p99_ms"],
    }


def _busy(runs: list[dict[str, Any]]) -> float:
    """Median share of one CPU ingest used during the load: near 1 means the
    generator kept it saturated (the figures are per CPU-second either way)."""
    return round(
        statistics.median(r["cpu"]["ingest"] / r["load_seconds"] for r in runs), 2
    )


def _rounds(variants: list[str], rounds: int) -> list[list[str]]:
    """Each round rotates the order: ABC, BCA, CAB ..."""
    return [
        variants[r % len(variants) :] + variants[: r % len(variants)]
        for r in range(rounds)
    ]


def _ratio_stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


async def _claim(stack: Stack, n: int, name: str) -> Path:
    devices = await claim_devices(
        stack.cp.api_url, stack.cp.token, stack.cp.tenant, n, prefix=name
    )
    path = stack.workdir / f"devices-{name}.json"
    save_devices(devices, path)
    return path


@dataclass(frozen=True)
class Load:
    """The B1/B2 fleet and how it is measured: ``devices`` each at most one
    request per ``interval`` s, over ``connections`` keep-alive connections,
    ``rounds`` interleaved runs of ``seconds`` each."""

    devices: int
    interval: float
    seconds: float
    rounds: int
    connections: int

    def fleet_args(self, *, seconds: float | None = None) -> list[str]:
        """The generator's flags common to both (the interval flag differs)."""
        duration = self.seconds if seconds is None else seconds
        return ["--duration", str(duration), "--connections", str(self.connections)]


async def bench_heartbeats(
    stack: Stack, load: Load, *, warmup: float = 2.0
) -> dict[str, Any]:
    """B1: heartbeats per CPU-s end to end (batched ingest on uvicorn and on
    granian, unbatched, batched without the identity cache, batched with
    tracing on at 1 % sampling, and batched from devices in a running rollout
    with the telemetry analysis off and on: ``analysed.py``), the empty FastAPI
    handler's requests per CPU-s and each server's floor (a bare ASGI app),
    interleaved."""
    stack.add_ingest("unbatched", XDP47_INGEST_BATCH_MAX="1")
    if "traced" not in stack.urls:
        stack.add_ingest("traced", **_traced_env(stack))
    if "uncached" not in stack.urls:
        stack.add_ingest("uncached", XDP47_INGEST_CACHE_SIZE="0")
    if "granian" not in stack.urls:
        stack.add_ingest("granian", XDP47_INGEST_SERVER="granian")
    if "asgi" not in stack.urls:
        stack.add_ingest("asgi", XDP47_INGEST_FAST_LANE="false")
    if "empty" not in stack.urls:
        stack.add_baseline()
    for server in SERVERS:
        stack.add_baseline(f"floor_{server}", app="raw", server=server)
    path = await _claim(stack, load.devices, "b1")
    paths = await analysed_fleets(stack, load.devices)
    args = ["--interval", str(load.interval), *load.fleet_args()]
    e2e = ["ingest", "broker", "scheduler", "postgres"]
    # Warm-up: every variant once, short, not measured.
    warm = ["--interval", str(load.interval), *load.fleet_args(seconds=warmup)]
    variants = (
        "batched",
        "asgi",
        "granian",
        "unbatched",
        "uncached",
        "traced",
        *ANALYSIS_VARIANTS,
    )
    servers_only = ("empty", *(f"floor_{s}" for s in SERVERS))
    for v in (*variants, *servers_only):
        w = await measure(
            stack,
            v,
            warm,
            paths.get(v, path),
            groups=["ingest"],
            persisted=v not in servers_only,
        )
        if not w["ok"]:
            return {
                "bench": "B1_heartbeats",
                "ok": False,
                "reason": f"warm-up {v}: {w['reason']}",
            }
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in (*variants, *servers_only)}
    for order in _rounds(list(runs), load.rounds):
        for v in order:
            r = await measure(
                stack,
                v,
                args,
                paths.get(v, path),
                groups=["ingest"] if v in servers_only else e2e,
                persisted=v not in servers_only,
            )
            if not r["ok"]:
                return {
                    "bench": "B1_heartbeats",
                    "ok": False,
                    "variant": v,
                    "reason": r["reason"],
                }
            runs[v].append(r)

    def rate(r: dict[str, Any]) -> float:
        return float(r["accepted"]) / float(r["cpu_total"])

    batched = [rate(r) for r in runs["batched"]]
    unbatched = [rate(r) for r in runs["unbatched"]]
    uncached = [rate(r) for r in runs["uncached"]]
    traced = [rate(r) for r in runs["traced"]]
    rollout = [rate(r) for r in runs["rollout"]]
    analysed = [rate(r) for r in runs["analysed"]]
    # CPU per heartbeat with the analysis over without it, minus one, per round.
    cost = [o / a - 1 for o, a in zip(rollout, analysed, strict=True)]
    empty = [rate(r) for r in runs["empty"]]
    ratio = [b / e for b, e in zip(batched, empty, strict=True)]
    granian = [rate(r) for r in runs["granian"]]
    asgi = [rate(r) for r in runs["asgi"]]
    gain = [b / u for b, u in zip(batched, unbatched, strict=True)]
    figure = statistics.median(batched)
    accepted = sum(r["accepted"] for r in runs["batched"])

    def per_stage(rs: list[dict[str, Any]]) -> dict[str, float]:
        n = sum(r["accepted"] for r in rs)
        return {
            k: round(sum(r["cpu"][k] for r in rs) / n * 1e6, 1) for k in rs[0]["cpu"]
        }

    return {
        "bench": "B1_heartbeats",
        "ok": True,
        "figure": round(figure),
        "unit": "heartbeats per CPU-second (ingest + broker + scheduler + postgres)",
        "target": B1_TARGET,
        "meets_target": figure >= B1_TARGET,
        "baseline": round(statistics.median(empty)),
        "baseline_unit": "requests per CPU-second of an empty FastAPI POST handler",
        "ratio": _ratio_stats(ratio)["median"],
        "ratio_min_max": [_ratio_stats(ratio)["min"], _ratio_stats(ratio)["max"]],
        "ratio_target": B1_RATIO_TARGET,
        "meets_ratio_target": statistics.median(ratio) >= B1_RATIO_TARGET,
        "asgi": round(statistics.median(asgi)),
        "asgi_ratio": _ratio_stats([a / e for a, e in zip(asgi, empty, strict=True)]),
        "lane_over_asgi": _ratio_stats(
            [b / a for b, a in zip(batched, asgi, strict=True)]
        ),
        "us_per_heartbeat_asgi": per_stage(runs["asgi"]),
        "granian": round(statistics.median(granian)),
        "granian_ratio": _ratio_stats(
            [g / e for g, e in zip(granian, empty, strict=True)]
        ),
        "granian_over_uvicorn": _ratio_stats(
            [g / b for g, b in zip(granian, batched, strict=True)]
        ),
        "us_per_heartbeat_granian": per_stage(runs["granian"]),
        "wall_hb_per_s_granian": round(
            statistics.median(
                r["accepted"] / r["load_seconds"] for r in runs["granian"]
            )
        ),
        "p99_ms_granian": max(r["p99_ms"] for r in runs["granian"]),
        "server_floor": _floors(runs, empty),
        "unbatched": round(statistics.median(unbatched)),
        "batched_over_unbatched": _ratio_stats(gain),
        "us_per_heartbeat_batched": per_stage(runs["batched"]),
        "us_per_heartbeat_unbatched": per_stage(runs["unbatched"]),
        "uncached": round(statistics.median(uncached)),
        "cached_over_uncached": _ratio_stats(
            [b / u for b, u in zip(batched, uncached, strict=True)]
        ),
        "us_per_heartbeat_uncached": per_stage(runs["uncached"]),
        "traced": round(statistics.median(traced)),
        "traced_over_batched": _ratio_stats(
            [t / b for t, b in zip(traced, batched, strict=True)]
        ),
        "us_per_heartbeat_traced": per_stage(runs["traced"]),
        "trace_exports": stack.otlp_sink.requests if stack.otlp_sink else 0,
        "rollout": round(statistics.median(rollout)),
        "analysed": round(statistics.median(analysed)),
        "analysis_cost": _ratio_stats(cost),
        "analysis_cost_target": ANALYSIS_COST_TARGET,
        "meets_analysis_cost_target": statistics.median(cost) <= ANALYSIS_COST_TARGET,
        "us_per_heartbeat_rollout": per_stage(runs["rollout"]),
        "us_per_heartbeat_analysed": per_stage(runs["analysed"]),
        "wall_hb_per_s_batched": round(
            statistics.median(
                r["accepted"] / r["load_seconds"] for r in runs["batched"]
            )
        ),
        "p99_ms_batched": max(r["p99_ms"] for r in runs["batched"]),
        "ingest_busy_batched": _busy(runs["batched"]),
        "rounds": load.rounds,
        "devices": load.devices,
        "connections": load.connections,
        "accepted_total": accepted,
        "persisted_total": sum(r["committed"] for r in runs["batched"]),
        "non_2xx": 0,
        "pinned": stack.pinned,
        "note": SHARED,
    }


def _floors(
    runs: dict[str, list[dict[str, Any]]], empty: list[float]
) -> dict[str, dict[str, Any]]:
    """Per server, a bare ASGI app's requests per CPU-s, its ratio to the empty
    FastAPI POST (same rounds) and CPU µs per request: what the server and the
    event loop alone cost."""
    out = {}
    for server in SERVERS:
        rs = runs[f"floor_{server}"]
        rates = [r["accepted"] / r["cpu_total"] for r in rs]
        out[server] = {
            "requests_per_cpu_s": round(statistics.median(rates)),
            "ratio": _ratio_stats([f / e for f, e in zip(rates, empty, strict=True)]),
            "us_per_request": round(
                sum(r["cpu_total"] for r in rs) / sum(r["accepted"] for r in rs) * 1e6,
                1,
            ),
        }
    return out


def _per_poll(rs: list[dict[str, Any]]) -> dict[str, float]:
    """CPU µs per poll by process over the rounds ``rs``."""
    n = sum(r["polls"] for r in rs)
    return {k: round(sum(r["cpu"][k] for r in rs) / n * 1e6, 1) for k in rs[0]["cpu"]}


def _traced_env(stack: Stack) -> dict[str, str]:
    """The traced variant: ingest with tracing on through the standard OTEL_*
    variables, 1 % of heartbeats sampled, exported over OTLP/HTTP to a sink."""
    if stack.otlp_sink is None:
        stack.otlp_sink = OtlpSink()
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": stack.otlp_sink.traces_url,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
        "OTEL_SERVICE_NAME": "xdp47-ingest-traced",
    }


async def bench_polls(stack: Stack, load: Load) -> dict[str, Any]:
    """B2: desired-state polls with ETag/304 per CPU-s of ingest + PostgreSQL
    (ingest on uvicorn, on granian, and without the identity cache), beside the
    empty handler's GET."""
    if "empty" not in stack.urls:
        stack.add_baseline()
    if "uncached" not in stack.urls:
        stack.add_ingest("uncached", XDP47_INGEST_CACHE_SIZE="0")
    if "granian" not in stack.urls:
        stack.add_ingest("granian", XDP47_INGEST_SERVER="granian")
    if "asgi" not in stack.urls:
        stack.add_ingest("asgi", XDP47_INGEST_FAST_LANE="false")
    path = await _claim(stack, load.devices, "b2")
    args = ["--poll-interval", str(load.interval), *load.fleet_args()]
    variants = ("batched", "asgi", "granian", "uncached")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in (*variants, "empty")}
    for v in variants:
        await measure(
            stack,
            v,
            ["--poll-interval", str(load.interval), *load.fleet_args(seconds=2)],
            path,
            groups=["ingest"],
            persisted=False,
        )
    for order in _rounds(list(runs), load.rounds):
        for v in order:
            r = await measure(
                stack,
                v,
                args,
                path,
                groups=["ingest"] if v == "empty" else ["ingest", "postgres"],
                persisted=False,
            )
            if not r["ok"]:
                return {
                    "bench": "B2_polls",
                    "ok": False,
                    "variant": v,
                    "reason": r["reason"],
                }
            runs[v].append(r)
    polls = [r["polls"] / r["cpu_total"] for r in runs["batched"]]
    uncached = [r["polls"] / r["cpu_total"] for r in runs["uncached"]]
    granian = [r["polls"] / r["cpu_total"] for r in runs["granian"]]
    asgi = [r["polls"] / r["cpu_total"] for r in runs["asgi"]]
    empty = [r["polls"] / r["cpu_total"] for r in runs["empty"]]
    n304 = sum(r["counts"].get("poll 304", 0) for r in runs["batched"])
    n = sum(r["polls"] for r in runs["batched"])
    ratio = [p / e for p, e in zip(polls, empty, strict=True)]
    figure = statistics.median(polls)
    return {
        "bench": "B2_polls",
        "ok": True,
        "figure": round(figure),
        "unit": "desired-state polls per CPU-second (ingest + postgres)",
        "target": B2_TARGET,
        "meets_target": figure >= B2_TARGET,
        "baseline": round(statistics.median(empty)),
        "baseline_unit": "requests per CPU-second of an empty FastAPI GET handler",
        "ratio": _ratio_stats(ratio)["median"],
        "ratio_min_max": [_ratio_stats(ratio)["min"], _ratio_stats(ratio)["max"]],
        "share_304": round(n304 / n, 3) if n else 0,
        "asgi": round(statistics.median(asgi)),
        "asgi_ratio": _ratio_stats([a / e for a, e in zip(asgi, empty, strict=True)]),
        "lane_over_asgi": _ratio_stats(
            [p / a for p, a in zip(polls, asgi, strict=True)]
        ),
        "us_per_poll_asgi": _per_poll(runs["asgi"]),
        "granian": round(statistics.median(granian)),
        "granian_ratio": _ratio_stats(
            [g / e for g, e in zip(granian, empty, strict=True)]
        ),
        "us_per_poll_granian": _per_poll(runs["granian"]),
        "uncached": round(statistics.median(uncached)),
        "cached_over_uncached": _ratio_stats(
            [p / u for p, u in zip(polls, uncached, strict=True)]
        ),
        "us_per_poll": _per_poll(runs["batched"]),
        "p99_ms": max(r["p99_ms"] for r in runs["batched"]),
        "ingest_busy": _busy(runs["batched"]),
        "rounds": load.rounds,
        "devices": load.devices,
        "connections": load.connections,
        "non_2xx": 0,
        "pinned": stack.pinned,
        "note": SHARED,
    }


def run_script(
    name: str, args: list[str], *, db_url: str | None = None
) -> list[dict[str, Any]]:
    """Run ``bench/<name>`` (its own database on ``db_url``'s server) and pass
    its JSON lines through."""
    url = db_url or os.environ.get("XDP47_DB_URL", DB_URL)
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "XDP47_DB_URL": url},
    )
    lines = []
    for raw in done.stdout.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    if done.returncode != 0 and not lines:
        lines.append(
            {
                "bench": name,
                "ok": False,
                "reason": f"exited {done.returncode}: {done.stderr[-500:]}",
            }
        )
    return lines


async def run(args: argparse.Namespace) -> int:
    only = {b.strip().upper() for b in args.only.split(",")}
    db_url = os.environ.get("XDP47_DB_URL", DB_URL)
    amqp_url = os.environ.get("XDP47_AMQP_URL", AMQP_URL)
    failed = 0
    lines: list[dict[str, Any]] = []
    env = (
        {}
        if args.batch_wait_ms is None
        else {"XDP47_INGEST_BATCH_WAIT_MS": str(args.batch_wait_ms)}
    )
    if args.cache_ttl is not None:
        env["XDP47_INGEST_CACHE_TTL_S"] = str(args.cache_ttl)
    if only & {"B1", "B2"}:
        load = Load(
            devices=args.b1_devices,
            interval=args.b1_interval,
            seconds=args.seconds,
            rounds=args.rounds,
            connections=args.connections,
        )
        with open_stack(
            db_url, amqp_url, pin_cpus=not args.no_pin, extra_env=env
        ) as stack:
            try:
                for name, bench in (("B1", bench_heartbeats), ("B2", bench_polls)):
                    if name in only:
                        line = await bench(stack, load)
                        lines.append(line)
                        emit(line)
            finally:
                await stack.close()
    if "B3" in only:
        for line in run_script(
            "planning.py",
            ["--devices", *map(str, args.b3_devices), "--rounds", str(args.b3_rounds)],
        ):
            lines.append(line)
            emit(line)
    if "B4" in only:
        if (BENCH / "wave_advance.py").exists():
            for line in run_script("wave_advance.py", []):
                lines.append(line)
                emit(line)
        else:
            lines.append(
                {
                    "bench": "B4_wave_advance",
                    "ok": False,
                    "reason": "bench/wave_advance.py does not exist yet",
                }
            )
            emit(lines[-1])
    b1 = next((x for x in lines if x.get("bench") == "B1_heartbeats"), {})
    b1_us = b1.get("us_per_heartbeat_batched")
    minutes = args.minutes or 30.0
    # Not pinned: these check loss, backlog and memory at a fixed rate, and the
    # whole system under test needs more than the one CPU it would get pinned
    # (per-CPU figures are B1's business).
    unpinned: dict[str, Callable[[Stack], Awaitable[dict[str, Any]]]] = {
        "B5": lambda stack: soak(
            stack,
            devices=args.devices or 100_000,
            minutes=args.minutes or 10.0,
            b1=b1_us,
        ),
        "B6": lambda stack: million(
            stack,
            devices=args.devices or 1_000_000,
            minutes=minutes,
            interval=args.b6_interval,
            waves=args.b6_waves,
            burst_share=args.burst_share,
            burst_window=args.burst_window,
            sample_every=max(1.0, min(5.0, minutes)),
            b1=b1_us,
            cache_ttl=args.cache_ttl,
        ),
        "SCALE": lambda stack: scale_out(
            stack,
            devices=args.scale_devices,
            interval=args.scale_interval,
            seconds=args.scale_seconds,
        ),
    }
    for name, bench in unpinned.items():
        if name in only:
            with open_stack(db_url, amqp_url, pin_cpus=False, extra_env=env) as stack:
                try:
                    lines.append(await bench(stack))
                    emit(lines[-1])
                finally:
                    await stack.close()
    if "CACHE" in only:
        for line in run_script(
            "cache_memory.py", ["--devices", str(args.cache_devices)]
        ):
            lines.append(line)
            emit(lines[-1])
    if "B7" in only:
        b7 = ["--smoke"] if args.b7_smoke else []
        for line in run_script("agent_device.py", b7):
            lines.append(line)
            emit(line)
    failed = sum(1 for line in lines if not line.get("ok"))
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--only", default="B1,B2,B3,B4,B5,B7,SCALE,CACHE")
    p.add_argument(
        "--b7-smoke",
        action="store_true",
        help="B7 with 200 heartbeats (50 spaced), 16 MiB",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--no-pin", action="store_true", help="do not pin the processes to CPUs"
    )
    p.add_argument("--seconds", type=float, default=8.0, help="B1/B2 window per run")
    p.add_argument("--b1-devices", type=int, default=2000)
    p.add_argument(
        "--b1-interval",
        type=float,
        default=0.25,
        help="per-device interval in B1/B2 (offered rate = devices/interval)",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=256,
        help="B1/B2 keep-alive connections of the generator: how many requests "
        "can be in flight at once (each device has at most one)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        help="ingest's XDP47_INGEST_BATCH_WAIT_MS (default: the service's)",
    )
    p.add_argument(
        "--cache-ttl",
        type=float,
        help="ingest's XDP47_INGEST_CACHE_TTL_S (default: the service's, 600)",
    )
    p.add_argument("--b3-devices", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--b3-rounds", type=int, default=3)
    p.add_argument(
        "--devices", type=int, help="B5/B6 fleet size (default 100,000 / 1,000,000)"
    )
    p.add_argument("--minutes", type=float, help="B5/B6 duration (default 10 / 30)")
    p.add_argument(
        "--b6-interval", type=float, default=300.0, help="B6 heartbeat interval (s)"
    )
    p.add_argument("--b6-waves", type=int, default=10, help="B6 rollout waves")
    p.add_argument(
        "--burst-share", type=float, default=0.1, help="B6 reconnect burst: devices"
    )
    p.add_argument(
        "--burst-window", type=float, default=30.0, help="B6 reconnect burst: seconds"
    )
    p.add_argument(
        "--scale-devices", type=int, default=4000, help="SCALE (two of each) fleet"
    )
    p.add_argument(
        "--scale-interval", type=float, default=2.0, help="SCALE heartbeat interval"
    )
    p.add_argument(
        "--scale-seconds", type=float, default=120.0, help="SCALE fleet duration"
    )
    p.add_argument(
        "--cache-devices",
        type=int,
        default=1_000_000,
        help="CACHE: devices in ingest's identity cache (bench/cache_memory.py)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
