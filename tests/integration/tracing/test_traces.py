"""Traces across HTTP → RabbitMQ → scheduler → PostgreSQL, in an in-memory span
exporter: one heartbeat's trace runs from ingest's request through the publish
of its batch to the scheduler's commit; heartbeats batched together each keep a
whole trace and the batch's spans link them; one start command's trace runs from
the api's request to the wave it started."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from tests.integration.api.support import auth, make_tenant, mint
from tests.integration.ingest.conftest import make_device
from tests.support.amqp import delete_topology
from xdp47_common import tracing
from xdp47_common.adapters.amqp import connect, declare_topology
from xdp47_common.models import ALL_SCOPES
from xdp47_common.settings import ControlSettings
from xdp47_common.topology import Topology
from xdp47_ingest import IngestSettings
from xdp47_ingest import create_app as create_ingest
from xdp47_scheduler.service import Scheduler

from ..scheduler.conftest import scheduler_settings

pytestmark = pytest.mark.integration

HEARTBEAT_ROUTE = "POST /api/devices/{device_id}/heartbeat"


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert tracing.configure("xdp47-tests", exporter=spans, set_global=False)
    yield spans
    tracing.shutdown()


@pytest.fixture(scope="module")
async def topology(amqp_url: str, amqp_namespace: str) -> AsyncIterator[Topology]:
    topology = Topology(f"{amqp_namespace}_trace")
    connection = await connect(amqp_url)
    channel = await connection.channel()
    await declare_topology(channel, topology)
    await channel.close()
    yield topology
    await delete_topology(connection, topology)
    await connection.close()


@pytest.fixture(scope="module")
async def stack(
    exporter: InMemorySpanExporter,
    db_url: str,
    amqp_url: str,
    topology: Topology,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, Any]]:
    """The api, ingest and the scheduler in process, traced (set up after
    ``configure``: the apps choose their server spans when created)."""
    from xdp47_api.app import create_app as create_api

    api = create_api(
        ControlSettings(
            db_url=db_url,
            amqp_url=amqp_url,
            amqp_namespace=topology.namespace,
            blob_dir=str(tmp_path_factory.mktemp("blobs")),
        )
    )
    ingest = create_ingest(
        IngestSettings(
            db_url=db_url,
            amqp_url=amqp_url,
            amqp_namespace=topology.namespace,
            # Heartbeats sent together share a batch even on a loaded machine.
            ingest_batch_wait_ms=100,
        )
    )
    scheduler = Scheduler(scheduler_settings(db_url, amqp_url, topology.namespace))
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    await scheduler.start()
    try:
        async with (
            api.router.lifespan_context(api),
            ingest.router.lifespan_context(ingest),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=api), base_url="http://api"
            ) as api_client,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=ingest), base_url="http://ingest"
            ) as ingest_client,
        ):
            yield {"api": api_client, "ingest": ingest_client, "pool": pool}
    finally:
        await scheduler.stop()
        await pool.close()


def _trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    ]


def _server_spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.SERVER and s.name == name
    ]


async def _eventually(check: Any) -> Any:
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(20), wait=wait_fixed(0.05), reraise=True
    ):
        with attempt:
            return check()
    raise AssertionError("unreachable")


def _parent(span: ReadableSpan) -> int:
    assert span.parent is not None, span.name
    return span.parent.span_id


def _heartbeat(seq: int = 1) -> dict[str, Any]:
    return {"seq": seq, "current_artifact_id": None, "health": "ok", "metrics": {}}


def _whole_heartbeat_trace(
    exporter: InMemorySpanExporter, topology: Topology, trace_id: int
) -> dict[str, ReadableSpan]:
    spans = _trace(exporter, trace_id)
    by_kind = {
        "publish": [
            s
            for s in spans
            if s.kind is SpanKind.PRODUCER and s.name == f"publish {topology.telemetry}"
        ],
        "process": [
            s
            for s in spans
            if s.kind is SpanKind.CONSUMER
            and s.name == f"process {topology.heartbeats_queue}"
        ],
    }
    assert by_kind["publish"], [s.name for s in spans]
    assert by_kind["process"], [s.name for s in spans]
    return {k: v[0] for k, v in by_kind.items()}


async def test_one_heartbeat_is_one_trace_to_the_commit(exporter, stack, topology):
    device = await make_device(stack["pool"])
    r = await stack["ingest"].post(
        f"/api/devices/{device.id}/heartbeat",
        json=_heartbeat(),
        headers={"Authorization": f"Bearer {device.credential}"},
    )
    assert r.status_code == 202, r.text
    [server] = [
        s
        for s in _server_spans(exporter, HEARTBEAT_ROUTE)
        if device.id in str(s.attributes)
    ]
    trace_id = server.context.trace_id

    def commit_in_trace() -> dict[str, ReadableSpan]:
        found = _whole_heartbeat_trace(exporter, topology, trace_id)
        spans = _trace(exporter, trace_id)
        names = [s.name for s in spans]
        assert any(n.startswith("COMMIT") for n in names), names
        return found

    found = await _eventually(commit_in_trace)
    spans = _trace(exporter, trace_id)
    # ingest's request → the publish of its batch → the scheduler's processing
    # → the commit, parent to child.
    assert _parent(found["publish"]) == server.context.span_id
    assert _parent(found["process"]) == found["publish"].context.span_id
    commit = next(s for s in spans if s.name.startswith("COMMIT"))
    assert _parent(commit) == found["process"].context.span_id
    assert {s.resource.attributes["service.name"] for s in spans} == {"xdp47-tests"}


async def test_heartbeats_batched_together_keep_their_traces(exporter, stack, topology):
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    devices = [await make_device(stack["pool"], tenant) for _ in range(3)]
    for d in devices:  # known to ingest's identity cache: no lookup in the batch
        first = await stack["ingest"].post(
            f"/api/devices/{d.id}/heartbeat",
            json=_heartbeat(),
            headers={"Authorization": f"Bearer {d.credential}"},
        )
        assert first.status_code == 202
    exporter.clear()
    answers = await asyncio.gather(
        *(
            stack["ingest"].post(
                f"/api/devices/{d.id}/heartbeat",
                json=_heartbeat(seq=2),
                headers={"Authorization": f"Bearer {d.credential}"},
            )
            for d in devices
        )
    )
    assert [a.status_code for a in answers] == [202, 202, 202]
    servers = [
        s
        for s in _server_spans(exporter, HEARTBEAT_ROUTE)
        if any(d.id in str(s.attributes) for d in devices)
    ]
    assert len(servers) == 3
    traces = {s.context.trace_id for s in servers}
    # Every heartbeat's trace has its publish and its processing.
    found = await _eventually(
        lambda: [_whole_heartbeat_trace(exporter, topology, t) for t in traces]
    )
    publishes = {f["publish"].context.span_id: f["publish"] for f in found}
    # One batch message: its publish span continues one heartbeat's trace and
    # links the other two heartbeats' publish spans, each linked back to it.
    [main] = [p for p in publishes.values() if len(p.links) == 2]
    others = set(publishes) - {main.context.span_id}
    assert {link.context.span_id for link in main.links} == others
    for other in others:
        [back] = publishes[other].links
        assert back.context.span_id == main.context.span_id


async def test_start_command_trace_reaches_the_wave_start(exporter, stack, topology):
    pool = stack["pool"]
    tenant = await make_tenant(pool)
    await make_device(pool, tenant)
    h = auth(await mint(pool, tenant, ALL_SCOPES))
    api = stack["api"]
    art = await api.post(
        "/api/artifacts",
        headers=h,
        json={"tenant": tenant, "uri": "https://e.com/a", "sha256": "2" * 64},
    )
    assert art.status_code == 201, art.text
    ro = await api.post(
        "/api/rollouts",
        headers=h,
        json={"tenant": tenant, "artifact_id": art.json()["id"]},
    )
    assert ro.status_code == 201, ro.text
    rid = ro.json()["id"]
    r = await api.post(f"/api/rollouts/{rid}:start", headers=h)
    assert r.status_code == 202, r.text
    [server] = [
        s
        for s in exporter.get_finished_spans()
        if s.kind is SpanKind.SERVER
        and s.name.startswith("POST")
        and rid in str(s.attributes)
    ]

    def wave_started() -> list[ReadableSpan]:
        spans = _trace(exporter, server.context.trace_id)
        names = [s.name for s in spans]
        assert f"publish {topology.commands}" in names, names
        assert f"process {topology.commands_queue}" in names, names
        assert "wave start" in names, names
        return spans

    spans = await _eventually(wave_started)
    wave = next(s for s in spans if s.name == "wave start")
    assert wave.attributes["xdp47.rollout_id"] == rid
    assert wave.attributes["xdp47.wave"] == 1
