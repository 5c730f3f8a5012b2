"""Fleet simulator: many devices speaking the real device protocol from one process.

Each simulated device claims itself once (``POST /api/devices/claim`` with a
``devices:claim`` token), then on its own schedule heartbeats a full
``HeartbeatBody`` with a monotonic ``seq`` (``POST /api/devices/{id}/heartbeat``)
and/or polls ``GET /api/devices/{id}/desired`` with ``If-None-Match``. When told
to update (``action == "update"`` for an artifact it does not run) it "applies"
it after ``apply_delay`` seconds and reports the result in its next heartbeat,
sent at once: the new version, or a failure for ``failure_share`` of the applies.

Rate: a device's next request is due one interval (± ``jitter``) after its
previous one *finished*, and a fixed pool of ``connections`` workers (httpx with
keep-alive, a bounded pool) sends what is due; so a slow server makes the fleet
lag, never burst. Every response status is counted per kind (``heartbeat 202``,
``poll 304`` ...), transport errors as ``heartbeat error:<Type>``.

    uv run python bench/fleet.py claim --api URL --token T --tenant X --devices N \\
        --out devices.json
    uv run python bench/fleet.py run --ingest URL --devices-file devices.json \\
        --interval 60 --duration 600 [--poll-interval 300] --out result.json

``run`` prints ``{"event": "started", ...}`` when it starts sending and writes a
result JSON (counts, latency percentiles, and each device's highest accepted
seq, which the runner compares with ``devices.last_seq``).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import random
import signal
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rawhttp import RawClient, RawError, RawResponse

__all__ = ["Device", "Fleet", "FleetConfig", "claim_devices", "percentile"]

HW = ("rpi4", "rpi3", "x86", "jetson")


@dataclass(slots=True)
class Device:
    """One simulated device: identity, what it runs, and its protocol state."""

    id: str
    credential: str
    seq: int = 0
    version: str | None = "1.0.0"
    artifact_id: str | None = None
    last_apply: dict[str, Any] | None = None
    etag: str | None = None
    applying: str | None = None  # artifact id being applied
    applying_version: str | None = None
    # failed applies, not retried (None until the first: a million empty sets
    # would cost the generator ~200 MB)
    refused: set[str] | None = None
    accepted_seq: int = -1  # highest seq answered 202
    told_at: float | None = None  # wall clock of the first "update" answer

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"}


@dataclass
class FleetConfig:
    """How the fleet behaves; intervals in seconds (None: never)."""

    ingest_url: str
    interval: float | None = 10.0
    poll_interval: float | None = None
    jitter: float = 0.1
    duration: float = 10.0
    failure_share: float = 0.0
    apply_delay: float = 1.0
    connections: int = 64
    seq_base: int = 0
    timeout: float = 30.0
    seed: int | None = None
    client: str = "raw"  # "raw" (rawhttp, cheap) or "httpx"
    # A reconnect burst (a network blip): ``burst_share`` of the devices, picked
    # at random, each send one extra heartbeat at a random moment of
    # [burst_at, burst_at + burst_window] s after the start; their regular
    # schedule goes on.
    burst_at: float | None = None
    burst_share: float = 0.1
    burst_window: float = 30.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of ``values`` by nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def claim_devices(
    api_url: str,
    token: str,
    tenant: str,
    count: int,
    *,
    prefix: str = "sim",
    concurrency: int = 32,
    channel: str = "stable",
) -> list[Device]:
    """Claim ``count`` devices ``<prefix>-00000000`` … with varied labels
    (``hw`` cycles over four values, ``ring`` canary for every tenth)."""
    ids = [f"{prefix}-{i:08d}" for i in range(count)]
    devices: list[Device] = []
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=api_url, limits=limits, timeout=60, headers=headers
    ) as client:
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for item in enumerate(ids):
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                i, device_id = queue.get_nowait()
                body = {
                    "tenant": tenant,
                    "device_id": device_id,
                    "channel": channel,
                    "labels": {
                        "hw": HW[i % 4],
                        "ring": "canary" if i % 10 == 0 else "main",
                    },
                }
                # A claim is idempotent (same id, new credential): retry one
                # whose connection broke (an idle keep-alive closed by the server).
                for attempt in range(5):
                    try:
                        answer = await client.post("/api/devices/claim", json=body)
                        break
                    except httpx.TransportError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.2 * (attempt + 1))
                if answer.status_code not in (200, 201):
                    raise RuntimeError(
                        f"claim {device_id}: {answer.status_code} {answer.text}"
                    )
                devices.append(Device(device_id, answer.json()["credential"]))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    devices.sort(key=lambda d: d.id)
    return devices


class Fleet:
    """Runs ``devices`` against ingest as ``config`` says; ``run`` returns stats."""

    def __init__(self, devices: list[Device], config: FleetConfig) -> None:
        self.devices = devices
        self.config = config
        self.counts: Counter[str] = Counter()
        # arrays of doubles: 8 bytes a sample (a list of floats takes 32)
        self.latency = {"heartbeat": array("d"), "poll": array("d")}
        self.lag = array("d")  # how late a due request was sent
        self.burst_sent = 0
        self.applied = 0
        self.apply_failed = 0
        self._rng = random.Random(config.seed)
        self._heap: list[tuple[float, int, str, int]] = []
        self._tie = itertools.count()
        self._index = {d.id: i for i, d in enumerate(devices)}
        for d in devices:
            d.seq = max(d.seq, config.seq_base)

    def _push(self, due: float, kind: str, index: int) -> None:
        heapq.heappush(self._heap, (due, next(self._tie), kind, index))

    def _next(self, interval: float) -> float:
        j = self.config.jitter
        return interval * (1 + self._rng.uniform(-j, j))

    def _body(self, d: Device) -> bytes:
        return json.dumps(
            {
                "seq": d.seq,
                "current_version": d.version,
                "current_artifact_id": d.artifact_id,
                "last_apply": d.last_apply,
                "health": "ok",
                "metrics": {"cpu": 0.12, "mem": 0.4, "simulated": True},
            }
        ).encode()

    def _answer(self, d: Device, index: int, payload: dict[str, Any]) -> None:
        """Start an apply when the desired state names a new artifact."""
        target = payload.get("artifact_id")
        if (
            payload.get("action") == "update"
            and target
            and target != d.artifact_id
            and target != d.applying
            and (d.refused is None or target not in d.refused)
        ):
            if d.told_at is None:
                d.told_at = time.time()
            d.applying, d.applying_version = target, payload.get("version")
            self._push(time.monotonic() + self.config.apply_delay, "applied", index)

    async def _heartbeat(self, client: Any, d: Device) -> None:
        d.seq += 1
        seq = d.seq
        started = time.perf_counter()
        try:
            answer = await client.post(
                f"/api/devices/{d.id}/heartbeat",
                content=self._body(d),
                headers={**d.auth, "Content-Type": "application/json"},
            )
        except (httpx.HTTPError, RawError) as exc:
            self.counts[f"heartbeat error:{type(exc).__name__}"] += 1
            return
        self.latency["heartbeat"].append(time.perf_counter() - started)
        self.counts[f"heartbeat {answer.status_code}"] += 1
        if answer.status_code == 202:
            d.accepted_seq = max(d.accepted_seq, seq)
            if answer.content:
                self._maybe_update(d, answer)

    def _maybe_update(self, d: Device, answer: httpx.Response | RawResponse) -> None:
        try:
            payload = answer.json()
        except ValueError:
            return  # the empty baseline handler answers no body
        if isinstance(payload, dict):
            self._answer(d, self._index[d.id], payload)

    async def _poll(self, client: Any, d: Device) -> None:
        headers = dict(d.auth)
        if d.etag:
            headers["If-None-Match"] = d.etag
        started = time.perf_counter()
        try:
            answer = await client.get(f"/api/devices/{d.id}/desired", headers=headers)
        except (httpx.HTTPError, RawError) as exc:
            self.counts[f"poll error:{type(exc).__name__}"] += 1
            return
        self.latency["poll"].append(time.perf_counter() - started)
        self.counts[f"poll {answer.status_code}"] += 1
        if answer.status_code == 200:
            d.etag = answer.headers.get("etag")
            self._maybe_update(d, answer)

    def _applied(self, d: Device) -> None:
        target, d.applying = d.applying, None
        if target is None:
            return
        version = d.applying_version
        at = datetime.now(UTC).isoformat()
        if self._rng.random() < self.config.failure_share:
            d.refused = (d.refused or set()) | {target}
            d.last_apply = {
                "artifact_id": target,
                "result": "failed",
                "reason": "apply failed",
                "at": at,
            }
            self.apply_failed += 1
        else:
            d.artifact_id, d.version = target, version
            d.last_apply = {"artifact_id": target, "result": "ok", "at": at}
            self.applied += 1

    async def run(self, stop: asyncio.Event | None = None) -> dict[str, Any]:
        """Send what is due until ``duration`` passed (or ``stop`` is set)."""
        cfg = self.config
        now = time.monotonic()
        for i in range(len(self.devices)):
            # Spread the first requests over one interval: no thundering herd.
            if cfg.interval is not None:
                self._push(now + self._rng.uniform(0, cfg.interval), "heartbeat", i)
            if cfg.poll_interval is not None:
                self._push(now + self._rng.uniform(0, cfg.poll_interval), "poll", i)
        if cfg.burst_at is not None:
            n = round(len(self.devices) * cfg.burst_share)
            for i in self._rng.sample(range(len(self.devices)), n):
                at = now + cfg.burst_at + self._rng.uniform(0, cfg.burst_window)
                self._push(at, "reconnect", i)
        # One client with ONE keep-alive connection per worker: httpcore's pool
        # scans every connection for every request (quadratic in the pool
        # size), which made a 64-connection client cost ~7 ms CPU per request.
        limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=120
        )
        queue: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue(
            maxsize=cfg.connections
        )
        end = now + cfg.duration
        started = time.time()

        async def worker() -> None:
            client: Any = (
                RawClient(cfg.ingest_url, timeout=cfg.timeout)
                if cfg.client == "raw"
                else httpx.AsyncClient(
                    base_url=cfg.ingest_url, limits=limits, timeout=cfg.timeout
                )
            )
            async with client:
                while (item := await queue.get()) is not None:
                    kind, i = item
                    d = self.devices[i]
                    if kind == "applied":
                        self._applied(d)
                        kind = "heartbeat"  # the outcome is reported at once
                    elif kind == "reconnect":
                        self.burst_sent += 1
                        kind = "heartbeat"  # one more, the schedule goes on
                    if kind == "heartbeat":
                        await self._heartbeat(client, d)
                        if cfg.interval is not None and item[0] == "heartbeat":
                            self._push(
                                time.monotonic() + self._next(cfg.interval), kind, i
                            )
                    else:
                        await self._poll(client, d)
                        assert cfg.poll_interval is not None
                        self._push(
                            time.monotonic() + self._next(cfg.poll_interval), kind, i
                        )

        workers = [asyncio.create_task(worker()) for _ in range(cfg.connections)]
        while (t := time.monotonic()) < end and not (stop and stop.is_set()):
            if self._heap and self._heap[0][0] <= t:
                due, _, kind, i = heapq.heappop(self._heap)
                self.lag.append(t - due)
                await queue.put((kind, i))
            else:
                wait = self._heap[0][0] - t if self._heap else 0.05
                await asyncio.sleep(min(wait, 0.05, max(0.0, end - t)))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        return self.result(time.time() - started)

    def result(self, seconds: float) -> dict[str, Any]:
        hb, poll = self.latency["heartbeat"], self.latency["poll"]

        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 2)

        non_2xx = sum(
            n for k, n in self.counts.items() if k.split(" ", 1)[1][:1] not in "23"
        )
        return {
            "seconds": round(seconds, 3),
            "counts": dict(sorted(self.counts.items())),
            "accepted": self.counts["heartbeat 202"],
            "polls": self.counts["poll 200"] + self.counts["poll 304"],
            "non_2xx": non_2xx,
            "applied": self.applied,
            "apply_failed": self.apply_failed,
            "burst_heartbeats": self.burst_sent,
            "heartbeat_p50_ms": ms(percentile(hb, 0.5)),
            "heartbeat_p99_ms": ms(percentile(hb, 0.99)),
            "poll_p50_ms": ms(percentile(poll, 0.5)),
            "poll_p99_ms": ms(percentile(poll, 0.99)),
            "lag_p99_ms": ms(percentile(self.lag, 0.99)),
            "accepted_seq": {
                d.id: d.accepted_seq for d in self.devices if d.accepted_seq >= 0
            },
            "told_at": {
                d.id: round(d.told_at, 3) for d in self.devices if d.told_at is not None
            },
        }


def save_devices(devices: list[Device], path: Path) -> None:
    path.write_text(json.dumps([[d.id, d.credential] for d in devices]))


def load_devices(path: Path) -> list[Device]:
    return [Device(i, c) for i, c in json.loads(path.read_text())]


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    claim = sub.add_parser("claim", help="claim devices, save their credentials")
    claim.add_argument("--api", required=True)
    claim.add_argument("--token", required=True)
    claim.add_argument("--tenant", required=True)
    claim.add_argument("--devices", type=int, required=True)
    claim.add_argument("--prefix", default="sim")
    claim.add_argument("--concurrency", type=int, default=32)
    claim.add_argument("--out", type=Path, required=True)
    run = sub.add_parser("run", help="run claimed devices against ingest")
    run.add_argument("--ingest", required=True)
    run.add_argument("--devices-file", type=Path, required=True)
    run.add_argument("--limit", type=int, help="use only the first N devices")
    run.add_argument("--interval", type=float, help="heartbeat interval (s)")
    run.add_argument("--poll-interval", type=float, help="desired poll interval (s)")
    run.add_argument("--jitter", type=float, default=0.1)
    run.add_argument("--duration", type=float, default=10)
    run.add_argument("--failure-share", type=float, default=0.0)
    run.add_argument("--apply-delay", type=float, default=1.0)
    run.add_argument("--connections", type=int, default=64)
    run.add_argument("--seq-base", type=int, default=0)
    run.add_argument("--seed", type=int)
    run.add_argument(
        "--burst-at",
        type=float,
        help="seconds after the start of a reconnect burst (default: none)",
    )
    run.add_argument(
        "--burst-share", type=float, default=0.1, help="devices in the burst"
    )
    run.add_argument(
        "--burst-window", type=float, default=30.0, help="seconds the burst spans"
    )
    run.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="HTTP client: raw keep-alive sockets (cheap) or httpx",
    )
    run.add_argument("--out", type=Path, required=True)
    return parser


async def _main(args: argparse.Namespace) -> None:
    if args.command == "claim":
        devices = await claim_devices(
            args.api,
            args.token,
            args.tenant,
            args.devices,
            prefix=args.prefix,
            concurrency=args.concurrency,
        )
        save_devices(devices, args.out)
        _emit({"event": "claimed", "devices": len(devices)})
        return
    devices = load_devices(args.devices_file)[: args.limit]
    fleet = Fleet(
        devices,
        FleetConfig(
            ingest_url=args.ingest,
            interval=args.interval,
            poll_interval=args.poll_interval,
            jitter=args.jitter,
            duration=args.duration,
            failure_share=args.failure_share,
            apply_delay=args.apply_delay,
            connections=args.connections,
            seq_base=args.seq_base,
            seed=args.seed,
            client=args.client,
            burst_at=args.burst_at,
            burst_share=args.burst_share,
            burst_window=args.burst_window,
        ),
    )
    # SIGTERM ends the run early (the soak's harness stops it once its
    # rollout is done); the result is written as at the end of --duration.
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    _emit({"event": "started", "devices": len(devices)})
    result = await fleet.run(stop)
    args.out.write_text(json.dumps(result))
    summary = {k: v for k, v in result.items() if k not in {"accepted_seq", "told_at"}}
    _emit({"event": "done", **summary})


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio works, only slower
        pass
    asyncio.run(_main(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
