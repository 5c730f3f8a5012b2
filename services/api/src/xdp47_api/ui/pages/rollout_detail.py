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

from xdp47_api.state import Services, ServicesDep
from xdp47_api.ui.actors import named_rollouts
from xdp47_api.ui.events import RolloutEventHub
from xdp47_api.ui.pages._common import call_api, find_rollout, page_scope
from xdp47_api.ui.pages.rollout_devices import device_list
from xdp47_api.ui.plan import load_plan
from xdp47_api.ui.session import (
    SessionDep,
    SignInRequired,
    UiSession,
    current_session,
)
from xdp47_api.ui.templating import render, render_fragment
from xdp47_api.ui.timeline import ROW, STATES, timeline_height, wave_bars
from xdp47_api.usecases import artifacts, policies
from xdp47_api.usecases import progress as progress_cases
from xdp47_api.usecases import rollback as rollback_cases
from xdp47_api.usecases.rollout_commands import accepted_statuses, why_not_promote
from xdp47_common.models import Rollout, RolloutProgress, Scope
from xdp47_common.rollout.status import RolloutStatus

__all__ = ["REFRESH_SECONDS", "router"]

router = APIRouter(prefix="/ui/rollouts", include_in_schema=False)

REFRESH_SECONDS = 5.0
# A stream ends after this long; EventSource reconnects by itself, and the new
# stream re-checks the session.
STREAM_SECONDS = 300.0
LIVE_STATUSES = frozenset({RolloutStatus.DRAFT, RolloutStatus.RUNNING})
# How long a page that sent a retry waits for the scheduler to take it up.
FOLLOW_SECONDS = 60.0
REFRESH = "_rollout_refresh.html"  # what a live refresh sends (see the docstring)


def _ended_at(progress: RolloutProgress) -> str | None:
    """The status and attempt of an ended rollout (``failed:1``), None while live."""
    if progress.status in LIVE_STATUSES:
        return None
    return f"{progress.status.value}:{progress.attempt}"


async def _live_context(
    services: Services,
    session: UiSession,
    rollout: Rollout,
    *,
    sent: str | None = None,
    follow: str | None = None,
) -> dict[str, Any]:
    """What the live part shows. ``sent``: the command the page just sent; after
    a retry (the one command that reopens an ended rollout) the rollout still
    reads ended until the scheduler takes it up, so the page follows it.
    ``follow``: the ended state such a page waits to see change."""
    progress = await call_api(
        progress_cases.progress(services, session.tenant, rollout.id)
    )
    if sent == "retry":
        follow = _ended_at(progress)
    elif follow is not None and _ended_at(progress) != follow:
        follow = None  # the command took effect
    current = next((w for w in progress.waves if w.current), None)
    (rollout,), runs = await named_rollouts(
        services, session.tenant, [rollout], progress.runs
    )
    gate_run = next(
        (
            r
            for r in reversed(runs)
            if current and r.wave == current.wave and r.attempt == progress.attempt
        ),
        runs[-1] if runs else None,
    )
    return {
        "r": rollout,
        "progress": progress,
        "bars": wave_bars(progress.waves),
        "runs": runs,
        "gate_run": gate_run,
        "row": ROW,
        "timeline_height": timeline_height(len(progress.waves)),
        "states": STATES,
        "command_from": accepted_statuses(),
        # Promote is offered while the current wave is in its grace.
        "promotable_now": rollout.status is RolloutStatus.RUNNING
        and rollout.hold is None
        and await why_not_promote(services, rollout) is None,
        # Live if either read says so: the page shows ``rollout``'s status, and
        # a status that changed between the two reads must not leave a page
        # reading "running" without a stream (the next refresh ends it).
        "live": rollout.status in LIVE_STATUSES
        or progress.status in LIVE_STATUSES
        or follow is not None,
        "follow": follow,
    }


@router.get("/{rollout_id}")
async def rollout_page(
    rollout_id: UUID,
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    sent: Annotated[
        str | None,
        Query(pattern="^(start|retry|abort|rollback|pause|resume|approve|promote)$"),
    ] = None,
) -> Response:
    page_scope(session, Scope.ROLLOUTS_READ)
    rollout = await find_rollout(services, session, rollout_id)
    artifact = policy = None
    if session.can(Scope.ARTIFACTS_READ):
        artifact = await artifacts.find(services, session.tenant, rollout.artifact_id)
    if rollout.policy_id and session.can(Scope.POLICIES_READ):
        policy = await policies.find(services, session.tenant, rollout.policy_id)
    plan = None
    if rollout.status is RolloutStatus.DRAFT:
        plan = await load_plan(services, session, rollout.id)
    ctx = await _live_context(services, session, rollout, sent=sent)
    devices = await device_list(services, session, rollout)
    rollbacks = await rollback_cases.rollbacks_of(services, session.tenant, rollout.id)
    return render(
        request,
        "rollout.html",
        session,
        artifact=artifact,
        policy=policy,
        plan=plan,
        sent=sent,
        rollbacks=rollbacks,
        **ctx,
        **devices,
    )


@router.get("/{rollout_id}/live")
async def live_fragment(
    rollout_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    page_scope(session, Scope.ROLLOUTS_READ)
    rollout = await find_rollout(services, session, rollout_id)
    return render(
        request, REFRESH, session, **await _live_context(services, session, rollout)
    )


@router.get("/{rollout_id}/abort")
async def abort_dialog(
    rollout_id: UUID, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    session.require(Scope.ROLLOUTS_WRITE)
    rollout = await find_rollout(services, session, rollout_id)
    progress = await progress_cases.find(services, session.tenant, rollout.id)
    affected = progress.not_updated if progress else 0
    return render(request, "_abort_dialog.html", session, r=rollout, affected=affected)


async def _stream(
    request: Request,
    services: Services,
    session: UiSession,
    rollout: Rollout,
    follow: str | None,
) -> AsyncIterator[ServerSentEvent]:
    hub: RolloutEventHub = request.app.state.ui_events
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    follow_ends = loop.time() + FOLLOW_SECONDS
    async with hub.subscribe(session.tenant, rollout.id) as sub:
        # The first refresh goes out at once: an event published between the
        # page's render and this subscription reached no one, and the page must
        # not wait a whole refresh period to learn of it.
        wait = 0.0
        while not hub.closed.is_set() and loop.time() < ends:
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.queue.get(), wait)
            wait = REFRESH_SECONDS
            if await request.is_disconnected():
                return
            try:  # the token may have been revoked meanwhile
                session = await current_session(request, services)
            except SignInRequired:
                yield ServerSentEvent(event="done", raw_data="signed out")
                return
            rollout = await find_rollout(services, session, rollout.id)
            if loop.time() > follow_ends:
                follow = None  # the scheduler did not take the command up
            ctx = await _live_context(services, session, rollout, follow=follow)
            follow = ctx["follow"]
            html = render_fragment(request, REFRESH, session, **ctx)
            yield ServerSentEvent(event="live", raw_data=html, retry=3000)
            if not ctx["live"]:
                yield ServerSentEvent(event="done", raw_data=rollout.status.value)
                return


async def _watched(
    rollout_id: UUID, session: SessionDep, services: ServicesDep
) -> tuple[UiSession, Rollout]:
    # A dependency, so a refusal is an ordinary answer before the stream starts.
    page_scope(session, Scope.ROLLOUTS_READ)
    return session, await find_rollout(services, session, rollout_id)


@router.get("/{rollout_id}/events", response_class=EventSourceResponse)
async def rollout_events(
    request: Request,
    watched: Annotated[tuple[UiSession, Rollout], Depends(_watched)],
    services: ServicesDep,
    follow: Annotated[
        str | None, Query(max_length=40, pattern=r"^[a-z]+:[0-9]+$")
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    session, rollout = watched
    async for event in _stream(request, services, session, rollout, follow):
        yield event
