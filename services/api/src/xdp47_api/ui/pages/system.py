"""``/ui/system``: runtime metrics of the control plane: this API process's
uptime and database pool, the depth and consumer count of every work queue and
its dead queue (the bus's ``queue_depth``: a passive look that creates nothing),
the heartbeats per second ingest accepts and the scheduler's lag (read from
their ``/metrics``, ``system_feeds``), and the tenant's devices seen in the last
minute. Refreshed by polling."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from xdp47_api.state import Services, ServicesDep
from xdp47_api.ui.pages._common import is_htmx
from xdp47_api.ui.pages.system_feeds import Feeds, metrics_urls
from xdp47_api.ui.session import SessionDep
from xdp47_api.ui.templating import render
from xdp47_api.usecases import progress

__all__ = ["QueueStat", "router"]

router = APIRouter(prefix="/ui/system", include_in_schema=False)

POLL_SECONDS = 5


@dataclass(frozen=True)
class QueueStat:
    name: str
    messages: int | None
    consumers: int | None
    problem: str | None = None


async def _queue_stats(services: Services) -> list[QueueStat]:
    names: list[str] = []
    for work_queue, _, _ in services.topology.work_queues:
        names += [work_queue, services.topology.dead_queue(work_queue)]
    stats: list[QueueStat] = []
    for name in names:
        try:
            depth = await services.bus.queue_depth(name)
        except LookupError as exc:
            stats.append(QueueStat(name, None, None, str(exc) or "unknown"))
            continue
        stats.append(QueueStat(name, depth.messages, depth.consumers))
    return stats


def _feeds(request: Request, services: Services) -> Feeds:
    feeds = getattr(request.app.state, "system_feeds", None)
    if feeds is None:
        settings = services.settings
        feeds = request.app.state.system_feeds = Feeds(
            metrics_urls(settings.ingest_metrics_urls, settings.ingest_public_url),
            metrics_urls(settings.scheduler_metrics_urls),
        )
    assert isinstance(feeds, Feeds)
    return feeds


@router.get("")
async def system_page(
    request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    started = float(request.app.state.ui_started)
    activity = await progress.fleet_activity(services, session.tenant)
    pool = services.repos.pool_stats()
    feeds = _feeds(request, services)
    ctx: dict[str, Any] = {
        "uptime_seconds": int(time.monotonic() - started),
        "queues": await _queue_stats(services),
        "activity": activity,
        "heartbeat_rate": await feeds.heartbeat_rate(),
        "scheduler_lag": await feeds.scheduler_lag(),
        "pool_size": pool.size,
        "pool_idle": pool.idle,
        "pool_max": pool.max,
        "pool_min": pool.min,
        "poll_seconds": POLL_SECONDS,
    }
    name = "_system_stats.html" if is_htmx(request) else "system.html"
    return render(request, name, session, **ctx)
