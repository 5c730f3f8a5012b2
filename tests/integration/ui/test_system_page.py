"""The System page's figures come from the services' own counters: the
heartbeat rate is ingest's count of accepted heartbeats per second (summed over
its replicas), the scheduler lag its heard-behind gauge; a replica that does
not answer makes the figure unknown, never a wrong number."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import signed_in
from xdp47_api.ui.pages.system_feeds import HEARTBEAT_ROUTE, Feeds
from xdp47_common.models import ALL_SCOPES
from xdp47_common.web.metrics import HttpMetrics

pytestmark = pytest.mark.integration


@contextmanager
def serving(registry: CollectorRegistry) -> Iterator[str]:
    """``registry`` at http://127.0.0.1:<port>/metrics, as a service serves it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def accept(metrics: HttpMetrics, n: int) -> None:
    for _ in range(n):
        metrics.observe("POST", HEARTBEAT_ROUTE, 202, 0.002)
    # Refused and other routes are not heartbeats accepted.
    metrics.observe("POST", HEARTBEAT_ROUTE, 401, 0.001)
    metrics.observe("GET", "/api/devices/{device_id}/desired", 200, 0.001)


def _figure(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}">(.*?)</span></div>', html, re.S)
    assert m, html
    return re.sub(r"<[^>]+>", "", m.group(1)).strip()


async def test_heartbeat_rate_is_ingests_accepted_count_per_second(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    replicas = [CollectorRegistry(), CollectorRegistry()]
    http = [HttpMetrics(r, prefix="xdp47_ingest") for r in replicas]
    sched = CollectorRegistry()
    behind = Gauge("xdp47_scheduler_heard_behind_seconds", "lag", registry=sched)
    behind.set(2.5)
    tenant = await make_tenant(pool, "system")
    with serving(replicas[0]) as a, serving(replicas[1]) as b, serving(sched) as s:
        now = [1000.0]
        ui_app.state.system_feeds = Feeds([a, b], [s], clock=lambda: now[0])
        try:
            async with signed_in(ui_app, await mint(pool, tenant, ALL_SCOPES)) as c:
                first = (await c.get("/ui/system")).text
                assert _figure(first, "heartbeat-rate") == "measuring"
                assert _figure(first, "scheduler-lag") == "2.5 s"
                accept(http[0], 300)
                accept(http[1], 100)
                now[0] += 5.0  # the page's next poll
                page = (await c.get("/ui/system")).text
                # 400 accepted by the two replicas in the 5 s between the reads.
                assert _figure(page, "heartbeat-rate") == "80.0/s"
                ui_app.state.system_feeds = Feeds([a, "http://127.0.0.1:9/metrics"], [])
                page = (await c.get("/ui/system")).text
                assert _figure(page, "heartbeat-rate").startswith(
                    "ingest metrics unavailable"
                )
                assert (
                    _figure(page, "scheduler-lag")
                    == "XDP47_SCHEDULER_METRICS_URLS is not set"
                )
        finally:
            del ui_app.state.system_feeds
