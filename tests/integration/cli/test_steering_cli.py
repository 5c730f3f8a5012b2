"""The steering commands at the terminal, against the real API: ``xdp47 rollouts
pause|resume|approve|promote`` send the command the rollout's phase accepts
(exit 0, the command and the status it was sent in), refuse one it does not
(exit 1, the API's 409 naming the phase), and take a rollout by id or name
prefix. The scheduler (not running here) moves the status afterwards; the
rollout's phase is written as the scheduler would."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from tests.integration.cli.conftest import LiveApi, log_in
from tests.integration.cli.scripted import Run, Script, apply, draft

pytestmark = pytest.mark.integration

PENDING = ("pending", None)


async def _running(pool: asyncpg.Pool[Any], api: LiveApi) -> uuid.UUID:
    script = Script("running", 1, [[PENDING] * 3, None], [Run(1)])
    return await apply(pool, api, script)


async def _hold(pool: asyncpg.Pool[Any], rid: uuid.UUID, hold: str | None) -> None:
    await pool.execute(
        "UPDATE rollouts SET hold = $2, held_since = CASE WHEN $2::text IS NULL"
        " THEN NULL ELSE now() END WHERE id = $1",
        rid,
        hold,
    )


async def test_steering_commands_follow_the_phase(
    live_api: LiveApi, xdp47, pool: asyncpg.Pool[Any]
) -> None:
    log_in(xdp47, live_api)
    rid = await _running(pool, live_api)

    paused = xdp47("rollouts", "pause", str(rid))
    assert paused.code == 0, paused.stderr
    assert f"pause requested for rollout {rid} (status running)" in paused.stdout
    # Not held: approve is refused with the phase in the message.
    approve = xdp47("rollouts", "approve", str(rid))
    assert approve.code == 1
    assert "running" in approve.stderr
    assert "approve" in approve.stderr

    await _hold(pool, rid, "paused")
    again = xdp47("rollouts", "pause", str(rid), "-o", "json")
    assert again.code == 0, again.stderr  # already paused: accepted, a no-op
    assert json.loads(again.stdout)["hold"] == "paused"
    promote = xdp47("rollouts", "promote", str(rid))
    assert promote.code == 1
    assert "paused" in promote.stderr
    resumed = xdp47("rollouts", "resume", str(rid))
    assert resumed.code == 0, resumed.stderr
    assert "(status running (paused))" in resumed.stdout

    await _hold(pool, rid, "awaiting_approval")
    approved = xdp47("rollouts", "approve", str(rid))
    assert approved.code == 0, approved.stderr
    assert "approve requested" in approved.stdout
    assert "awaiting_approval" in approved.stdout


async def test_steering_a_draft_is_refused_and_names_are_resolved(
    live_api: LiveApi, xdp47, pool: asyncpg.Pool[Any]
) -> None:
    log_in(xdp47, live_api)
    rid = await draft(live_api, 2)
    name = f"steer-{uuid.uuid4().hex[:8]}-draft"
    await pool.execute("UPDATE rollouts SET name = $2 WHERE id = $1", rid, name)
    for verb in ("pause", "resume", "approve", "promote"):
        ran = xdp47("rollouts", verb, name[:14])  # a unique prefix of the name
        assert ran.code == 1, (verb, ran.stdout)
        assert "draft" in ran.stderr, (verb, ran.stderr)
    unknown = xdp47("rollouts", "pause", f"no-such-{uuid.uuid4().hex[:6]}")
    assert unknown.code == 1
    assert "no rollout" in unknown.stderr.lower()
