"""Claim once, heartbeat with a monotonic seq across restarts, retry 503s after
Retry-After, re-claim on 401, and drive a whole update through a fake control
plane."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import stat
import uuid

import httpx
import pytest

from tests.unit.agent.conftest import AgentFactory
from tests.unit.agent.support import CONTROL, FakeControlPlane, Sleeps, make_config
from xdp47_agent.agent import Agent
from xdp47_agent.httpx_adapter import HttpxHttp
from xdp47_agent.protocol import ProtocolError, parse_retry_after
from xdp47_agent.state import SEQ_BLOCK
from xdp47_demoapp import DemoApp


async def test_claims_once_and_restart_reuses_identity(
    make_agent: AgentFactory, control: FakeControlPlane, state_dir
):
    agent = make_agent()
    await agent.step()
    await agent.step()
    assert len(control.claims) == 1
    claim = control.claims[0]
    assert claim["tenant"] == "acme"
    assert claim["labels"] == {"site": "berlin", "model": "k2"}
    device_id = agent.device_id
    assert device_id is not None
    assert claim["device_id"] == device_id  # generated and stored before claiming
    mode = stat.S_IMODE(os.stat(state_dir / "credential").st_mode)
    assert mode == 0o600
    assert json.loads((state_dir / "credential").read_text())["device_id"] == device_id
    assert (state_dir / "device_id").read_text() == device_id

    restarted = make_agent()
    await restarted.step()
    assert restarted.device_id == device_id
    assert len(control.claims) == 1
    seqs = [hb["seq"] for hb in control.heartbeats]
    assert seqs == sorted(set(seqs))
    assert seqs[-1] > SEQ_BLOCK  # the restart jumped past the reserved block


async def test_seq_never_repeats_across_many_restarts(make_agent, control):
    for _ in range(5):
        agent = make_agent()
        for _ in range(3):
            await agent.step()
    seqs = [hb["seq"] for hb in control.heartbeats]
    assert len(seqs) == 15
    assert all(a < b for a, b in itertools.pairwise(seqs))


async def test_device_id_override_claims_that_id(make_agent, control):
    agent = make_agent(device_id="kiosk-7")
    await agent.step()
    assert control.claims[-1]["device_id"] == "kiosk-7"
    assert control.heartbeats[-1]["seq"] >= 1


async def test_503_with_retry_after_is_retried(make_agent, control, sleeps: Sleeps):
    agent = make_agent()
    await agent.step()
    control.fail_next = [(503, {"Retry-After": "7"}), (503, {"Retry-After": "2"})]
    before = len(control.heartbeats)
    await agent.step()
    assert len(control.heartbeats) == before + 1
    assert len(sleeps.delays) == 2
    assert sleeps.delays[0] >= 7
    assert sleeps.delays[1] >= 2


async def test_network_errors_are_retried_with_backoff(control, state_dir):
    failures = {"left": 2}

    class Flaky(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if failures["left"]:
                failures["left"] -= 1
                raise httpx.ConnectError("refused", request=request)
            response: httpx.Response = await control.handle_async_request(request)
            return response

    sleeps = Sleeps()
    async with httpx.AsyncClient(transport=Flaky()) as client:
        agent = Agent(make_config(state_dir), HttpxHttp(client), sleep=sleeps)
        await agent.step()
    assert len(sleeps.delays) == 2
    assert len(control.heartbeats) == 1


async def test_401_on_heartbeat_reclaims_same_device(make_agent, control, state_dir):
    agent = make_agent()
    await agent.step()
    device_id = agent.device_id
    assert device_id is not None
    control.revoke(device_id)
    await agent.step()
    assert [c["device_id"] for c in control.claims] == [device_id, device_id]
    stored = json.loads((state_dir / "credential").read_text())
    assert stored["credential"] == control.credentials[device_id]
    assert len(control.heartbeats) == 2


async def test_bad_claim_token_is_a_protocol_error(make_agent, control):
    agent = make_agent(agent_token="wrong")
    control.fail_next = []
    with pytest.raises(Exception, match="401"):
        await agent.step()


async def test_invalid_heartbeat_answer_is_reported_not_fatal(make_agent, control):
    agent = make_agent()
    control.desired = {"action": "explode"}
    await agent.step()
    control.desired = {"action": "none"}
    await agent.step()
    assert (
        control.heartbeats[-1]["metrics"]["agent_error"]
        == "invalid desired state: action"
    )


async def test_4xx_is_not_retried(make_agent, control, sleeps):
    agent = make_agent()
    await agent.step()
    control.fail_next = [(422, {})]
    with pytest.raises(ProtocolError, match="422"):
        await agent.step()
    assert sleeps.delays == []


def test_retry_after_parsing():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


async def test_fake_control_plane_drives_a_full_update(control, state_dir, tmp_path):
    """claim → heartbeat → update → the next heartbeat reports the new version,
    and the demo app's metrics (read by the agent) follow it to 'failing'."""
    good, bad = b"good build" * 1000, b"bad build" * 1000
    control.artifacts = {"/files/good": good, "/files/bad": bad}
    app = DemoApp(state_dir, port=0)
    url = app.start()
    try:
        async with httpx.AsyncClient(transport=control) as client:
            agent = Agent(make_config(state_dir, metrics_url=url), HttpxHttp(client))
            await agent.step()
            assert control.heartbeats[-1]["current_version"] is None
            assert control.heartbeats[-1]["health"] == "ok"
            for name, content, version in (
                ("good", good, "1.1"),
                ("bad", bad, "1.2-bad"),
            ):
                aid = str(uuid.uuid4())
                control.desired = {
                    "action": "update",
                    "artifact_id": aid,
                    "version": version,
                    "uri": f"{CONTROL}/files/{name}",
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "size": len(content),
                }
                assert await agent.step() == 0.0
                await agent.step()
                report = control.heartbeats[-1]
                assert report["current_version"] == version
                assert report["current_artifact_id"] == aid
                assert report["last_apply"]["artifact_id"] == aid
                assert report["last_apply"]["result"] == "ok"
                assert report["last_apply"]["reason"] is None
                assert report["metrics"]["version"] == version
            assert control.heartbeats[-1]["health"] == "failing"
    finally:
        app.stop()


async def test_run_stops_on_event(make_agent, control):
    """``run`` heartbeats until the stop event, then returns promptly."""
    agent = make_agent()  # its sleep returns at once, so the loop runs hot
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    for _ in range(200):
        if len(control.heartbeats) >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(control.heartbeats) >= 3
