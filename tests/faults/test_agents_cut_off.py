"""Scenario 6: real ``xdp47-agent`` processes cut off from the control plane for
twice the offline timeout during a rollout, then reconnected.

Every agent reaches ingest (heartbeats and desired state: all a device learns
from the control plane) through a ``TcpProxy`` the test controls, half of them
through one that is cut (connections reset, new ones refused) right after the
rollout starts. The api (claim, artifact download) stays direct: the agent sends
its credential only to the api's own origin, which is the artifact URIs', and a
cut device never learns an artifact URI anyway. Figures: the cut devices are
marked ``offline`` and their targets stay pending or assigned (not ``failed``),
the rollout waits (``skip_offline`` is off); after the proxy listens again they
converge: the rollout completes and every agent applied the release.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import fetch, figure, open_stack, rollout_status, wait_for
from tests.support.brokers import OwnPostgres, OwnRabbit
from tests.support.processes import clean_env
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(240)]

AGENTS = 6
OFFLINE_AFTER = 2.0
CUT_FOR = 2 * OFFLINE_AFTER


async def test_agents_cut_off_go_offline_not_failed_and_converge(
    own_pg: OwnPostgres, own_rabbit: OwnRabbit, tmp_path: Path
) -> None:
    env = {"XDP47_SCHED_OFFLINE_AFTER": str(OFFLINE_AFTER)}
    with open_stack(own_pg, own_rabbit, tmp_path, extra_env=env) as stack:
        plane = stack.plane

        async def proxy() -> TcpProxy:
            ingest = TcpProxy("127.0.0.1", int(plane.ingest_url.rsplit(":", 1)[1]))
            await ingest.start()
            return ingest

        kept, cut = await proxy(), await proxy()
        name = f"a{uuid.uuid4().hex[:6]}"
        cut_ids = []
        for n in range(AGENTS):
            device_id = f"{name}-{n}"
            ingest = cut if n % 2 else kept
            if n % 2:
                cut_ids.append(device_id)
            state_dir = tmp_path / "devices" / device_id
            state_dir.mkdir(parents=True)
            stack.group.start(
                f"agent-{device_id}",
                "xdp47-agent",
                clean_env(
                    XDP47_CONTROL_URL=plane.api_url,
                    XDP47_INGEST_URL=f"http://127.0.0.1:{ingest.port}",
                    XDP47_TENANT=plane.tenant,
                    XDP47_DEVICE_LABELS=f"fleet={name}",
                    XDP47_AGENT_TOKEN=plane.token,
                    XDP47_STATE_DIR=str(state_dir),
                    XDP47_DEVICE_ID=device_id,
                    XDP47_HEARTBEAT_INTERVAL="0.3",
                    XDP47_APPLY_BACKOFF="1",
                    XDP47_APPLY_BACKOFF_MAX="2",
                ),
                wait=False,
            )
        label = json.dumps({"fleet": name})

        async def statuses() -> dict[str, str]:
            rows = await fetch(
                stack.db_url,
                "SELECT id, status FROM devices WHERE labels @> $1::text::jsonb",
                label,
            )
            return {r["id"]: r["status"] for r in rows}

        async def all_online() -> bool:
            s = await statuses()
            return len(s) == AGENTS and set(s.values()) == {"online"}

        await wait_for(all_online, within=60)
        async with httpx.AsyncClient(
            base_url=plane.api_url, headers=plane.auth, timeout=30
        ) as http:
            r = await http.post(
                "/api/artifacts/upload",
                params={"tenant": plane.tenant, "version": "2.0.0"},
                content=os.urandom(32 * 1024),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert r.status_code == 201, r.text
            artifact = r.json()
            policy = {
                "tenant": plane.tenant,
                "name": f"p{name}",
                "skip_offline": False,
                "require_ok": True,
                "wave_deadline_seconds": 600,
            }
            r = await http.post("/api/policies", json=policy)
            assert r.status_code == 201, r.text
            body = {
                "tenant": plane.tenant,
                "artifact_id": artifact["id"],
                "selector": {"fleet": name},
                "waves": 2,
                "policy_id": r.json()["id"],
            }
            r = await http.post("/api/rollouts", json=body)
            assert r.status_code == 201, r.text
            rollout_id = r.json()["id"]
            await cut.cut()
            r = await http.post(f"/api/rollouts/{rollout_id}:start")
            assert r.status_code == 202, r.text

        loop = asyncio.get_running_loop()
        cut_at = loop.time()

        async def cut_ones_offline() -> bool:
            s = await statuses()
            return all(s[d] == "offline" for d in cut_ids)

        await wait_for(cut_ones_offline, within=30, every=0.2)
        await asyncio.sleep(max(0.0, CUT_FOR - (loop.time() - cut_at)))
        cut_for = loop.time() - cut_at
        offline = [d for d, s in (await statuses()).items() if s == "offline"]
        targets = await fetch(
            stack.db_url,
            "SELECT device_id, state, reason FROM rollout_targets "
            "WHERE rollout_id = $1::text::uuid",
            rollout_id,
        )
        failed_while_cut = [
            (t["device_id"], t["reason"]) for t in targets if t["state"] == "failed"
        ]
        status_while_cut, _ = await rollout_status(stack.db_url, rollout_id)
        await cut.restore()

        async def finished() -> bool:
            return (await rollout_status(stack.db_url, rollout_id))[0] != "running"

        await wait_for(finished, within=90, every=0.3)
        status, _ = await rollout_status(stack.db_url, rollout_id)
        versions = await fetch(
            stack.db_url,
            "SELECT id, current_version, status FROM devices "
            "WHERE labels @> $1::text::jsonb",
            label,
        )
        converged = sum(r["current_version"] == "2.0.0" for r in versions)
        await kept.close()
        await cut.close()

    figure(
        f"FAULT agents-cut-off: agents={AGENTS} cut={len(cut_ids)} "
        f"cut_for={cut_for:.1f}s (offline_after={OFFLINE_AFTER:g}s) "
        f"offline_while_cut={len(set(offline) & set(cut_ids))} "
        f"failed_while_cut={len(failed_while_cut)} "
        f"status_while_cut={status_while_cut} terminal={status} "
        f"converged={converged}/{AGENTS}"
    )
    assert sorted(set(offline) & set(cut_ids)) == sorted(cut_ids)
    assert failed_while_cut == []
    assert status_while_cut == "running"
    assert status == "completed"
    assert converged == AGENTS
