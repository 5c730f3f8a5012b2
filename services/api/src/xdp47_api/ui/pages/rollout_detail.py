"""A rollout's page: the wave timeline (device states per wave), the gate's verdict,
the runs history and, before start, the plan preview. While the rollout can still
change, the page holds an SSE stream that sends the re-rendered live fragment on
every rollout event of this rollout and on a periodic refresh (so it stays right
without events); htmx swaps it in. The fragment also carries the header's status,
started and finished facts, and once the rollout has left draft an empty plan
preview, which htmx swaps out of band by id (``_rollout_refresh.html``), so the
whole page follows the rollout. The abort dialog says how many devices an abort
leaves on their old version."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from xdp47_api.repositories import (
    PgArtifactRepository,
    PgPolicyRepository,
    PgRolloutRepository,
)
from xdp47_api.repositories.rollout_progress import PgRolloutProgressRepository
from xdp47_api.routes.rollouts import COMMAND_FROM
from xdp47_api.state import Services, ServicesDep
from xdp47_api.ui.actors import named_rollouts
from xdp47_api.ui.events import RolloutEventHub
from xdp47_api.ui.pages._common import page_scope
from xdp47_api.ui.plan import load_plan
from xdp47_api.ui.session import (
    SessionDep,
    SignInRequired,
    UiError,
    UiSession,
    current_session,
)
from xdp47_api.ui.templating import render, render_fragment
from xdp47_api.ui.timeline import ROW, STATES, timeline_height, wave_bars
from xdp47_common.models import Rollout, Scope
from xdp47_common.rollout.status import RolloutStatus

__all__ = ["REFRESH_SECONDS", "router"]

router = APIRouter(prefix="/ui/rollouts", include_in_schema=False)

REFRESH_SECONDS = 5.0
# A stream ends after this long; EventSource reconnects by itself, and the new
# stream re-checks the session.
STREAM_SECONDS = 300.0
LIVE_STATUSES = frozenset({RolloutStatus.DRAFT, RolloutStatus.RUNNING})
RUNS_LIMIT = 1000
REFRESH = "_rollout_refresh.html"  # what a live refresh sends (see the docstring)


async def _rollout(services: Services, session: UiSession, rollout_id: UUID) -> Rollout:
    rollout = await PgRolloutRepository(services.pool).get(session.tenant, rollout_id)
    if rollout is None:
        raise UiError(404, f"rollout '{rollout_id}' not found")
    return rollout


async def _live_context(
    services: Services, session: UiSession, rollout: Rollout
) -> dict[str, Any]:
    progress = PgRolloutProgressRepository(services.pool)
    counts = await progress.wave_state_counts(session.tenant, rollout.id)
    runs = (
        await PgRolloutRepository(services.pool).runs(
            rollout.id, limit=RUNS_LIMIT, cursor=None
        )
    ).items
    (rollout,), runs = await named_rollouts(
        services.pool, session.tenant, [rollout], runs
    )
    bars = wave_bars(rollout.waves, counts, runs, rollout.current_wave)
    current = next((b.run for b in bars if b.current and b.run), None)
    return {
        "r": rollout,
        "bars": bars,
        "runs": runs,
        "gate_run": current or (runs[-1] if runs else None),
        "row": ROW,
        "timeline_height": timeline_height(len(bars)),
        "states": [word for _, word in STATES],
        "command_from": {k: {s.value for s in v} for k, v in COMMAND_FROM.items()},
        "live": rollout.status in LIVE_STATUSES,
        "extras": await progress.extras(session.tenant, rollout.id),
    }


@router.get("/{rollout_id}")
async def rollout_page(
    rollout_id: UUID,
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    sent: Annotated[str | None, Query(pattern="^(start|retry|abort)$")] = None,
) -> Response:
    page_scope(session, Scope.ROLLOUTS_READ)
    rollout = await _rollout(services, session, rollout_id)
    artifact = policy = None
    if session.can(Scope.ARTIFACTS_READ):
        artifact = await PgArtifactRepository(services.pool).get(
            session.tenant, rollout.artifact_id
        )
    if rollout.policy_id and session.can(Scope.POLICIES_READ):
        policy = await PgPolicyRepository(services.pool).get(
            session.tenant, rollout.policy_id
        )
    plan = None
    if rollout.status is RolloutStatus.DRAFT:
        plan = await load_plan(services, session, rollout.id)
    return render(
        request,
        "rollout.html",
        session,
        artifact=artifact,
        policy=policy,
        plan=plan,
        sent=sent,
        **await _live_context(services, session, rollout),
    )


@router.get("/{rollout_id}/live")
async def live_fragment(
    rollout_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    page_scope(session, Scope.ROLLOUTS_READ)
    rollout = await _rollout(services, session, rollout_id)
    return render(
        request, REFRESH, session, **await _live_context(services, session, rollout)
    )


@router.get("/{rollout_id}/abort")
async def abort_dialog(
    rollout_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ROLLOUTS_WRITE)
    rollout = await _rollout(services, session, rollout_id)
    affected = await PgRolloutProgressRepository(services.pool).not_yet_applied(
        session.tenant, rollout.id
    )
    return render(request, "_abort_dialog.html", session, r=rollout, affected=affected)


async def _stream(
    request: Request, services: Services, session: UiSession, rollout: Rollout
) -> AsyncIterator[ServerSentEvent]:
    hub: RolloutEventHub = request.app.state.ui_events
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    async with hub.subscribe(session.tenant, rollout.id) as sub:
        while not hub.closed.is_set() and loop.time() < ends:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.queue.get(), REFRESH_SECONDS)
            if await request.is_disconnected():
                return
            try:  # the token may have been revoked meanwhile
                session = await current_session(request, services)
            except SignInRequired:
                yield ServerSentEvent(event="done", raw_data="signed out")
                return
            rollout = await _rollout(services, session, rollout.id)
            ctx = await _live_context(services, session, rollout)
            html = render_fragment(request, REFRESH, session, **ctx)
            yield ServerSentEvent(event="live", raw_data=html, retry=3000)
            if rollout.status not in LIVE_STATUSES:
                yield ServerSentEvent(event="done", raw_data=rollout.status.value)
                return


async def _watched(
    rollout_id: UUID, session: SessionDep, services: ServicesDep
) -> tuple[UiSession, Rollout]:
    # A dependency, so a refusal is an ordinary answer before the stream starts.
    page_scope(session, Scope.ROLLOUTS_READ)
    return session, await _rollout(services, session, rollout_id)


@router.get("/{rollout_id}/events", response_class=EventSourceResponse)
async def rollout_events(
    request: Request,
    watched: Annotated[tuple[UiSession, Rollout], Depends(_watched)],
    services: ServicesDep,
) -> AsyncIterator[ServerSentEvent]:
    session, rollout = watched
    async for event in _stream(request, services, session, rollout):
        yield event
