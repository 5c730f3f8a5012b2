"""The real ``xdp47-scheduler`` process: fail fast, run a rollout, stop on SIGTERM.
And a heartbeat answered 202 reaches the database when ingest's broker link is cut
right after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.scheduler.support import (
    applies,
    drive,
    make_fleet,
    make_rollout,
    status_is,
    wait_for,
)
from tests.support.amqp import drop_namespace
from tests.support.processes import (
    ManagedProcess,
    ProcessGroup,
    clean_env,
    free_port,
)
from tests.support.tcp_proxy import TcpProxy
from xdp47_common.adapters.amqp import AmqpPublisher, connect
from xdp47_common.messages import StartRollout
from xdp47_common.topology import Topology
from xdp47_ingest import IngestSettings, create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """The shared process harness; stops what a test started, whatever happened."""
    with ProcessGroup(tmp_path / "logs") as g:
        yield g


def _start(group: ProcessGroup, **env: str) -> ManagedProcess:
    return group.start("scheduler", "xdp47-scheduler", clean_env(**env), wait=False)


def test_fails_fast_with_one_line_when_postgres_is_unreachable(amqp_url, group) -> None:
    port = free_port()
    proc = _start(
        group,
        XDP47_DB_URL=f"postgresql://postgres@127.0.0.1:{port}/x",
        XDP47_AMQP_URL=amqp_url,
    )
    assert proc.wait_exit(30) == 1
    lines = proc.log_path.read_text().strip().splitlines()
    assert lines[-1].startswith("xdp47-scheduler: cannot reach PostgreSQL at 127.0.0.1")


def test_fails_fast_when_the_schema_is_missing(server_db_url, amqp_url, group) -> None:
    proc = _start(group, XDP47_DB_URL=server_db_url, XDP47_AMQP_URL=amqp_url)
    assert proc.wait_exit(30) == 1
    assert "run xdp47-migrate first" in proc.log_path.read_text()


@pytest.fixture
async def proc_topology(amqp_url, amqp_namespace) -> AsyncIterator[Topology]:
    t = Topology(f"{amqp_namespace}_schedproc")
    yield t
    await drop_namespace(amqp_url, t.namespace)


async def test_the_process_runs_a_rollout_and_stops_on_sigterm(
    pool, db_url, amqp_url, proc_topology, group
) -> None:
    port = free_port()
    proc = _start(
        group,
        XDP47_DB_URL=db_url,
        XDP47_AMQP_URL=amqp_url,
        XDP47_AMQP_NAMESPACE=proc_topology.namespace,
        XDP47_SCHED_INTERVAL="0.2",
        XDP47_SCHED_HTTP_ADDR=f"127.0.0.1:{port}",
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:

            async def ready():
                assert (await probe.get("/readyz")).status_code == 200

            await wait_for(ready, within=30)
            app = create_app(
                IngestSettings(
                    db_url=db_url,
                    amqp_url=amqp_url,
                    amqp_namespace=proc_topology.namespace,
                )
            )
            conn = await connect(amqp_url)
            publisher = AmqpPublisher(conn, proc_topology)
            await publisher.start()
            fleet = await make_fleet(pool, 4)
            rid = await make_rollout(pool, fleet, waves=2)
            await publisher.publish(
                proc_topology.commands,
                "rollout.start",
                StartRollout(tenant=fleet.tenant, rollout_id=rid),
            )
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://ingest"
                ) as ingest,
            ):
                await drive(
                    pool,
                    ingest,
                    rid,
                    fleet.devices,
                    applies,
                    until=status_is("completed"),
                )
            await publisher.close()
            await conn.close()
            metrics = (await probe.get("/metrics")).text
            assert "xdp47_scheduler_waves_started_total" in metrics
    finally:
        code = proc.stop(timeout=30)
    log = proc.log_path.read_text()
    assert code == 0, log[-2000:]
    assert "scheduler stopped" in log


async def test_a_202_heartbeat_is_stored_though_the_broker_link_is_cut_after(
    pool, db_url, amqp_url, sched_topology, scheduler
) -> None:
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    creds = parts.netloc.rsplit("@", 1)[0]
    via_proxy = parts._replace(netloc=f"{creds}@127.0.0.1:{proxy.port}").geturl()
    app = create_app(
        IngestSettings(
            db_url=db_url,
            amqp_url=via_proxy,
            amqp_namespace=sched_topology.namespace,
            publish_timeout=2.0,
        )
    )
    fleet = await make_fleet(pool, 1)
    device = fleet.devices[0]
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ingest"
            ) as ingest,
        ):
            device.seq = 41
            desired = await device.beat(ingest)  # asserts the 202
            assert desired["action"] == "none"
            await proxy.cut()

            async def stored():
                seq = await pool.fetchval(
                    "SELECT last_seq FROM devices WHERE id = $1", device.id
                )
                assert seq == 42

            await wait_for(stored)
    finally:
        await proxy.close()
