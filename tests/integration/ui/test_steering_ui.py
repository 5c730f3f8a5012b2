"""Steering in the UI: a held rollout shows its hold on the list and its page,
the buttons follow the core's table by phase (Resume on a paused rollout, Pause
and Promote on a moving one, Approve only to tokens with rollouts:approve), and
their POSTs publish the API's commands (or show its 403 under four-eyes)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from tests.integration.api.support import make_tenant, mint
from tests.integration.ui.support import post_form, signed_in
from xdp47_common.models import ALL_SCOPES, Scope
from xdp47_common.tokens import hash_secret

pytestmark = pytest.mark.integration

SHA = "ab" * 32
GRACE_POLICY = json.dumps(
    {
        "require_ok": True,
        "skip_offline": True,
        "grace_seconds": 600,
        "min_success_ratio": 1.0,
        "max_failures_per_wave": 0,
        "abort_on_zero_eligible": True,
        "wave_deadline_seconds": 900,
    }
)
OPERATOR = ALL_SCOPES - {Scope.TENANTS_WRITE, Scope.ROLLOUTS_APPROVE}


async def _held(client: Any, pool: asyncpg.Pool[Any], hold: str | None) -> str:
    created = await post_form(
        client,
        "/ui/artifacts",
        "/ui/artifacts",
        {"uri": "https://x.example/s", "sha256": SHA, "version": "4.0.0"},
    )
    artifact_id = created.headers["location"].split("created=")[1]
    rollout = await post_form(
        client, "/ui/rollouts", "/ui/rollouts", {"artifact_id": artifact_id}
    )
    rollout_id = str(rollout.headers["location"].rsplit("/", 1)[1])
    await pool.execute(
        "UPDATE rollouts SET status = 'running', attempt = 1, current_wave = 1, "
        "hold = $2, held_since = CASE WHEN $2::text IS NULL THEN NULL ELSE now() END "
        "WHERE id = $1",
        uuid.UUID(rollout_id),
        hold,
    )
    return rollout_id


def _actions(html: str) -> set[str]:
    return {
        verb
        for verb in ("start", "retry", "pause", "resume", "promote", "approve", "abort")
        if f'data-action="{verb}"' in html
    }


async def test_a_paused_rollout_shows_its_hold_and_offers_resume(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "stp")
    async with signed_in(ui_app, await mint(pool, tenant, OPERATOR)) as client:
        rollout_id = await _held(client, pool, "paused")
        page = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert 'data-hold="paused"' in page
        assert _actions(page) == {"resume", "abort"}
        listed = (await client.get("/ui/rollouts")).text
        assert 'data-hold="paused"' in listed
        sent = await post_form(
            client,
            f"/ui/rollouts/{rollout_id}",
            f"/ui/rollouts/{rollout_id}/resume",
            {},
        )
        assert sent.status_code == 303
        assert sent.headers["location"].endswith("?sent=resume")

        moving = await _held(client, pool, None)
        page = (await client.get(f"/ui/rollouts/{moving}")).text
        # No grace to skip (no policy kept, no wave clock): no Promote.
        assert _actions(page) == {"pause", "abort"}
        await pool.execute(
            "UPDATE rollouts SET current_wave_started_at = now(), "
            "effective_policy = $2::text::jsonb WHERE id = $1",
            uuid.UUID(moving),
            GRACE_POLICY,
        )
        page = (await client.get(f"/ui/rollouts/{moving}")).text
        assert _actions(page) == {"pause", "promote", "abort"}
        listed = (await client.get("/ui/rollouts")).text
        assert 'data-action="promote"' not in listed  # offered on its page
        # Not offered, and refused when posted all the same: the token lacks
        # rollouts:approve.
        refused = await post_form(
            client, f"/ui/rollouts/{moving}", f"/ui/rollouts/{moving}/approve", {}
        )
        assert refused.status_code == 403


async def test_approve_is_offered_to_approvers_and_four_eyes_refuses_the_starter(
    pool: asyncpg.Pool[Any], ui_app: FastAPI
) -> None:
    tenant = await make_tenant(pool, "apv")
    token = await mint(pool, tenant, ALL_SCOPES - {Scope.TENANTS_WRITE})
    token_id = await pool.fetchval(
        "SELECT id FROM api_tokens WHERE token_hash = $1", hash_secret(token)
    )
    async with signed_in(ui_app, token) as client:
        rollout_id = await _held(client, pool, "awaiting_approval")
        page = (await client.get(f"/ui/rollouts/{rollout_id}")).text
        assert 'data-hold="awaiting_approval"' in page
        assert _actions(page) == {"approve", "abort"}
        assert "Approve wave 2" in page
        await pool.execute(
            "UPDATE rollouts SET started_by = $2 WHERE id = $1",
            uuid.UUID(rollout_id),
            f"token:{token_id}",
        )
        await pool.execute(
            "UPDATE tenants SET four_eyes_approval = true WHERE id = $1", tenant
        )
        refused = await post_form(
            client,
            f"/ui/rollouts/{rollout_id}",
            f"/ui/rollouts/{rollout_id}/approve",
            {},
        )
        assert refused.status_code == 403
        assert "four-eyes" in refused.text
