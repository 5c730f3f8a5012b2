"""Where heartbeats go: an explicit XDP47_INGEST_URL, else the ingest URL the
claim answer names (kept in the state dir across restarts), else the control
URL; a 404 there says which setting to change."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.unit.agent.support import INGEST, FakeControlPlane
from xdp47_agent.protocol import ProtocolError


async def test_the_claim_answer_says_where_heartbeats_go(
    make_agent, control, state_dir
):
    control.ingest_url = INGEST + "/"
    control.ingest_only = True
    agent = make_agent()
    await agent.step()
    await agent.step()
    assert control.heartbeat_hosts == ["ingest.test", "ingest.test"]
    stored = json.loads((state_dir / "credential").read_text())
    assert stored["ingest_url"] == INGEST  # normalised, kept with the credential

    control.ingest_url = None  # a restarted agent does not need to claim again
    restarted = make_agent()
    await restarted.step()
    assert len(control.claims) == 1
    assert control.heartbeat_hosts[-1] == "ingest.test"


async def test_an_explicit_ingest_url_wins(make_agent, control):
    control.ingest_url = "http://elsewhere.invalid"
    agent = make_agent(ingest_url=INGEST)
    await agent.step()
    assert control.heartbeat_hosts == ["ingest.test"]


async def test_no_ingest_url_anywhere_uses_the_control_url(make_agent, control):
    await make_agent().step()
    assert control.heartbeat_hosts == ["control.test"]


async def test_a_404_from_the_control_url_says_what_to_set(
    make_agent, control: FakeControlPlane
):
    control.ingest_only = True
    agent = make_agent()
    with pytest.raises(ProtocolError) as caught:
        await agent.step()
    message = str(caught.value)
    assert message.startswith("heartbeat: HTTP 404 from http://control.test: ")
    assert "set XDP47_INGEST_URL on the agent" in message
    assert "XDP47_INGEST_PUBLIC_URL on the api" in message
    assert "\n" not in message


async def test_a_404_from_an_explicit_ingest_url_names_it(make_agent, control):
    agent = make_agent(ingest_url="http://control.test/nothing-here")
    control.ingest_only = True
    with pytest.raises(
        ProtocolError, match="XDP47_INGEST_URL does not point at ingest"
    ):
        await agent.step()


async def test_run_logs_the_hint_as_one_line(make_agent, control, caplog):
    control.ingest_only = True
    agent = make_agent()
    stop = asyncio.Event()
    caplog.set_level(logging.ERROR, logger="xdp47_agent.agent")
    task = asyncio.create_task(agent.run(stop))

    def agent_lines() -> list[str]:
        # Only the agent's: other tests' tasks share the session's loop.
        return [
            r.getMessage() for r in caplog.records if r.name.startswith("xdp47_agent")
        ]

    for _ in range(200):
        if agent_lines():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    [line, *_] = agent_lines()
    assert "step failed (heartbeat: HTTP 404 from http://control.test" in line
    assert "set XDP47_INGEST_URL" in line
    assert "\n" not in line


async def test_a_malformed_ingest_url_in_the_claim_answer_is_refused(
    make_agent, control
):
    control.ingest_url = "ftp://ingest.test"
    with pytest.raises(ProtocolError, match="claim answer's ingest_url must be"):
        await make_agent().step()
