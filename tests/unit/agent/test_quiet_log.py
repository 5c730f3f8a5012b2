"""The agent logs what changes, not every heartbeat: an outage is one ERROR when
it starts and one INFO when it ends, its retries and repeats at DEBUG, and
heartbeats answered as usual write nothing at INFO."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.unit.agent.support import FakeControlPlane

ATTEMPTS = 8  # ControlClient's retries of one request


async def test_an_outage_is_two_lines_and_heartbeats_none(
    make_agent, control: FakeControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    control.fail_next = [(503, {})] * (ATTEMPTS * 3)  # three failed steps
    agent = make_agent()
    stop = asyncio.Event()
    caplog.set_level(logging.DEBUG, logger="xdp47_agent")
    task = asyncio.create_task(agent.run(stop))
    for _ in range(1000):
        if len(control.heartbeats) >= 20:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert len(control.heartbeats) >= 20
    loud = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.startswith("xdp47_agent")
    ]
    assert [level for level, _ in loud] == ["ERROR", "INFO", "INFO"], loud
    assert loud[0][1].startswith("step failed (claim: HTTP 503")
    assert loud[1][1].startswith("claimed device ")
    assert loud[2][1] == "steps succeed again after 3 failed"
    quiet = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert sum(m.startswith("step failed") for m in quiet) == 2
    assert sum(m.startswith("retrying in") for m in quiet) >= 3 * (ATTEMPTS - 1)
    assert sum(m.startswith("heartbeat ") for m in quiet) >= 20
