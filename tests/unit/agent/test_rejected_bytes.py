"""Bytes that failed verification are not downloaded again until the desired
state changes: the failure is reported in every heartbeat meanwhile, and the
memory survives a restart when the state dir can be written."""

from __future__ import annotations

import errno
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.conftest import AgentFactory, FakeClock
from tests.unit.agent.support import (
    ArtifactServer,
    FakeControlPlane,
    Signer,
    desired_for,
)
from xdp47_agent.agent import Agent

V1 = b"one\n" * 64
GOOD = b"two\n" * 5000
BAD = GOOD[::-1]  # same size, other bytes


async def _with_v1(
    agent: Agent,
    control: FakeControlPlane,
    server: ArtifactServer,
    signer: Signer | None = None,
) -> None:
    server.routes["/v1"] = ArtifactServer.body(V1)
    control.desired = desired_for(
        V1,
        server.url("/v1"),
        version="1.0.0",
        signature=signer.sign(V1) if signer else None,
    )
    await agent.step()
    assert agent.current is not None


async def _steps(agent: Agent, clock: FakeClock, n: int) -> None:
    """``n`` heartbeats an hour apart: far past any apply backoff."""
    for _ in range(n):
        clock.now += 3600
        await agent.step()


def _failed(beat: dict[str, Any], aid: str, code: str) -> bool:
    last = beat["last_apply"]
    return (last["artifact_id"], last["result"], last["code"]) == (
        aid,
        "failed",
        code,
    )


@pytest.mark.parametrize(
    ("served", "overrides", "code"),
    [
        (BAD, {}, "sha256_mismatch"),
        (GOOD[:-100], {}, "size_mismatch"),
        (GOOD, {"signature": "bad"}, "signature_invalid"),
    ],
)
async def test_refused_bytes_are_fetched_once_and_reported_every_heartbeat(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    server: ArtifactServer,
    clock: FakeClock,
    served: bytes,
    overrides: dict[str, Any],
    code: str,
):
    signer = Signer()
    agent = make_agent(verify_keys=signer.public_b64)
    await _with_v1(agent, control, server, signer)
    server.routes["/v2"] = ArtifactServer.body(served)
    desired = desired_for(GOOD, server.url("/v2"), signature=signer.sign(GOOD))
    desired.update(overrides)
    control.desired = desired
    before = len(control.heartbeats)
    await _steps(agent, clock, 6)
    assert server.hits["/v2"] == 1
    after_failure = control.heartbeats[before + 1 :]
    assert len(after_failure) == 5
    assert all(_failed(b, desired["artifact_id"], code) for b in after_failure)
    assert all(b["current_version"] == "1.0.0" for b in after_failure)


async def test_memory_survives_a_restart(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    server: ArtifactServer,
    clock: FakeClock,
):
    agent = make_agent()
    await _with_v1(agent, control, server)
    server.routes["/v2"] = ArtifactServer.body(BAD)
    control.desired = desired_for(GOOD, server.url("/v2"))
    await _steps(agent, clock, 2)
    assert server.hits["/v2"] == 1
    restarted = make_agent()
    await _steps(restarted, clock, 3)
    assert server.hits["/v2"] == 1
    assert _failed(
        control.heartbeats[-1], control.desired["artifact_id"], "sha256_mismatch"
    )
    # The first heartbeat after the restart already reports the refusal.
    assert control.heartbeats[-3]["last_apply"]["result"] == "failed"


async def test_read_only_dir_remembers_in_memory(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    server: ArtifactServer,
    clock: FakeClock,
    state_dir: Path,
):
    def fault(name: str) -> None:
        if name.startswith("rejected.json"):
            raise OSError(errno.EROFS, "Read-only file system", name)

    agent = make_agent(fault=fault)
    await _with_v1(agent, control, server)
    server.routes["/v2"] = ArtifactServer.body(BAD)
    control.desired = desired_for(GOOD, server.url("/v2"))
    await _steps(agent, clock, 4)
    assert server.hits["/v2"] == 1
    assert not (state_dir / "rejected.json").exists()
    assert _failed(
        control.heartbeats[-1], control.desired["artifact_id"], "sha256_mismatch"
    )


@pytest.mark.parametrize("change", ["artifact", "sha256", "rollout", "retry", "none"])
async def test_a_changed_desired_state_is_fetched_again(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    server: ArtifactServer,
    clock: FakeClock,
    state_dir: Path,
    change: str,
):
    agent = make_agent()
    await _with_v1(agent, control, server)
    server.routes["/v2"] = ArtifactServer.body(BAD)
    first = desired_for(GOOD, server.url("/v2"))
    control.desired = first
    await _steps(agent, clock, 2)
    assert server.hits["/v2"] == 1
    server.routes["/v2"] = ArtifactServer.body(GOOD)  # the bytes are fixed
    again = dict(first)
    if change == "artifact":
        again["artifact_id"] = str(uuid.uuid4())
    elif change == "sha256":
        server.routes["/v2"] = ArtifactServer.body(GOOD + b"!")
        again.update(desired_for(GOOD + b"!", server.url("/v2")))
        again["artifact_id"] = first["artifact_id"]
        again["rollout_id"] = first["rollout_id"]
    elif change == "rollout":
        again["rollout_id"] = str(uuid.uuid4())
    elif change == "retry":  # the operator retried the rollout: its next attempt
        again["attempt"] = 2
    else:  # the rollout ended (nothing asked), then the same order came back
        control.desired = {"action": "none"}
        await _steps(agent, clock, 1)
        assert not (state_dir / "rejected.json").exists()
    control.desired = again
    await _steps(agent, clock, 2)
    assert server.hits["/v2"] == 2
    assert (state_dir / "applied_version").read_text() == "2.0.0"
    assert control.heartbeats[-1]["last_apply"]["result"] == "ok"


async def test_a_persisting_problem_logs_at_debug_after_the_first_time(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    """Per-heartbeat lines are DEBUG: a desired state refused on every heartbeat
    logs one ERROR, not one per heartbeat."""
    agent = make_agent()
    control.desired = {"action": "update", "artifact_id": "not a uuid"}
    with caplog.at_level(logging.DEBUG, logger="xdp47_agent"):
        await _steps(agent, clock, 4)
    # Only the agent's records: other tests' tasks share the session's loop.
    records = [r for r in caplog.records if r.name.startswith("xdp47_agent")]
    errors = [r for r in records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert "invalid desired state" in errors[0].getMessage()
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert sum("invalid desired state" in m for m in debug) == 3
    assert sum(m.startswith("heartbeat ") for m in debug) == 4
