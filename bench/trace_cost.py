"""What tracing costs ingest per heartbeat, measured in process and in pairs.

B1's `traced` variant measures the whole pipeline, and on a loaded machine its
rounds spread more than the cost itself. This runs only ingest's heartbeat
path: one process per variant builds the ingest app (real PostgreSQL and
RabbitMQ, a throwaway database and namespace), sends ``--devices`` concurrent
heartbeats per round straight into the ASGI app (no sockets, no generator),
and reads its own CPU time over ``--rounds`` rounds after a warm-up (with
``gc.freeze()`` once the app is built, as the service does; ``--no-freeze``
without). ``off``
and ``on`` (``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` at ``--ratio``,
exported over OTLP/HTTP to ``otlp_sink.py``) alternate ``--pairs`` times.

    XDP47_DB_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
    XDP47_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ \\
      uv run python bench/trace_cost.py [--pairs 4] [--ratio 0.01]

One JSON line: CPU µs per heartbeat of each variant (median, min, max), the
per-pair difference ``on - off`` (median, min, max), and the sink's exports.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the tests' database and device helpers
    sys.path.insert(0, str(ROOT))

from otlp_sink import OtlpSink  # noqa: E402


def _heartbeat(device: Any, seq: int) -> tuple[dict[str, Any], bytes]:
    body = json.dumps(
        {
            "seq": seq,
            "current_version": "1.0.0",
            "current_artifact_id": None,
            "last_apply": None,
            "health": "ok",
            "metrics": {"cpu": 0.1},
        }
    ).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/devices/{device.id}/heartbeat",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"ingest"),
            (b"authorization", f"Bearer {device.credential}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    return scope, body


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    import asyncpg
    from tests.conftest import migrated_database
    from tests.integration.ingest.conftest import make_device
    from tests.support.amqp import delete_topology

    from xdp47_common import tracing
    from xdp47_common.adapters.amqp import connect, declare_topology
    from xdp47_common.topology import Topology
    from xdp47_ingest import IngestSettings, create_app

    traced = tracing.configure("xdp47-ingest-trace-cost")
    amqp_url = os.environ["XDP47_AMQP_URL"]
    async with migrated_database(os.environ["XDP47_DB_URL"], "xdp47_tracecost") as db:
        topology = Topology(f"tracecost_{uuid.uuid4().hex[:8]}")
        connection = await connect(amqp_url)
        channel = await connection.channel()
        await declare_topology(channel, topology)
        await channel.close()
        pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        devices = [await make_device(pool, tenant) for _ in range(args.devices)]
        app = create_app(
            IngestSettings(
                db_url=db,
                amqp_url=amqp_url,
                amqp_namespace=topology.namespace,
                device_rate_limit="off",
            )
        )
        if args.freeze:
            # As ``xdp47-ingest`` does before serving (its main module).
            gc.collect()
            gc.freeze()
        seqs = dict.fromkeys((d.id for d in devices), 0)

        async def one(device: Any) -> None:
            seqs[device.id] += 1
            scope, body = _heartbeat(device, seqs[device.id])
            statuses: list[int] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await app(scope, receive, send)
            if statuses != [202]:
                raise RuntimeError(f"heartbeat answered {statuses}")

        async def rounds(n: int) -> None:
            for _ in range(n):
                await asyncio.gather(*(one(d) for d in devices))

        try:
            async with app.router.lifespan_context(app):
                await rounds(5)  # warm: identity cache, connections, code paths
                started = time.process_time()
                await rounds(args.rounds)
                cpu = time.process_time() - started
        finally:
            await pool.close()
            await delete_topology(connection, topology)
            await connection.close()
    tracing.shutdown()
    return {
        "traced": traced,
        "us_per_heartbeat": round(cpu / (args.rounds * args.devices) * 1e6, 1),
    }


def _run(variant: str, args: argparse.Namespace, sink: OtlpSink) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["XDP47_LOG_LEVEL"] = "WARNING"
    if variant == "on":
        env |= {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.traces_url,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(args.ratio),
        }
    command = [sys.executable, __file__, "--child"]
    command += ["--devices", str(args.devices), "--rounds", str(args.rounds)]
    command += ["--freeze"] if args.freeze else ["--no-freeze"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["traced"] != (variant == "on"):
        raise RuntimeError(f"{variant}: tracing on = {result['traced']}")
    return float(result["us_per_heartbeat"])


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument(
        "--freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() once the app is built, as xdp47-ingest does",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(asyncio.run(_child(args))) + "\n")
        return
    sink = OtlpSink()
    runs: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for i in range(args.pairs):
            # Alternate which goes first, so a drift in load favours neither.
            for variant in ("off", "on") if i % 2 == 0 else ("on", "off"):
                runs[variant].append(_run(variant, args, sink))
    finally:
        sink.close()
    line = {
        "bench": "trace_cost",
        "unit": "CPU µs per heartbeat, ingest in process",
        "ratio": args.ratio,
        "off": _stats(runs["off"]),
        "on": _stats(runs["on"]),
        "on_minus_off": _stats(
            [b - a for a, b in zip(runs["off"], runs["on"], strict=True)]
        ),
        "pairs": args.pairs,
        "heartbeats_per_run": args.devices * args.rounds,
        "trace_exports": sink.requests,
        "load_average": os.getloadavg()[0],
    }
    sys.stdout.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
