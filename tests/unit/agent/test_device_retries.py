"""Per-device retries on the agent: it makes the try the server names once, not
before its ``retry_after``, and reports each outcome with the try's number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.agent.conftest import AgentFactory, FakeClock
from tests.unit.agent.support import ArtifactServer, FakeControlPlane, desired_for

CONTENT = b"release two\n" * 200
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _at(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _try(desired: dict[str, Any], n: int, *, wait: float, now: datetime = NOW) -> None:
    """Name try ``n``, to be made ``wait`` seconds after ``now`` (server clock)."""
    desired["device_attempt"] = n
    desired["server_time"] = _at(now)
    desired["retry_after"] = _at(now + timedelta(seconds=wait)) if wait else None


async def test_the_agent_waits_until_the_retry_time(
    make_agent: AgentFactory, control: FakeControlPlane, server: ArtifactServer
) -> None:
    agent = make_agent(heartbeat_interval=60.0)
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    desired = desired_for(CONTENT, server.url("/a"))
    _try(desired, 2, wait=30)
    control.desired = desired
    delay = await agent.step()
    assert server.hits.get("/a", 0) == 0  # not before retry_after
    # It wakes for the retry, not a heartbeat interval (60 s ± 10%) later.
    assert 30 <= delay <= 30.1
    # The device's own clock does not matter: 10 s of server time later, 20 s
    # are left, whatever the device thinks the time is.
    _try(desired, 2, wait=20, now=NOW + timedelta(seconds=10))
    assert 20 <= await agent.step() <= 20.1
    assert server.hits.get("/a", 0) == 0
    # Past retry_after (the answer still carries it): the try is made.
    _try(desired, 2, wait=0, now=NOW + timedelta(seconds=31))
    desired["retry_after"] = _at(NOW + timedelta(seconds=30))
    assert await agent.step() == 0.0
    assert server.hits["/a"] == 1
    assert agent.current is not None
    await agent.step()
    report = control.heartbeats[-1]["last_apply"]
    assert report["result"] == "ok"
    assert report["device_attempt"] == 2
    assert report["rollout_id"] == desired["rollout_id"]
    assert report["attempt"] == 1


async def test_each_try_is_made_once_and_reported_with_its_number(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    server: ArtifactServer,
    clock: FakeClock,
) -> None:
    """A failed try is not made again on the agent's own backoff: the next try
    is the server's to grant (it counts the failure first)."""
    agent = make_agent(apply_backoff=1.0)
    desired = desired_for(CONTENT, server.url("/a"))  # 404 for now
    _try(desired, 1, wait=0)
    control.desired = desired
    assert await agent.step() == 0.0
    assert server.hits["/a"] == 1
    for _ in range(3):
        clock.now += 1000  # far past any local backoff
        await agent.step()
    assert server.hits["/a"] == 1
    first = control.heartbeats[-1]["last_apply"]
    assert (first["result"], first["code"], first["device_attempt"]) == (
        "failed",
        "download_failed",
        1,
    )
    # The server grants try 2 and the artifact is there now.
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    _try(desired, 2, wait=0)
    assert await agent.step() == 0.0
    assert server.hits["/a"] == 2
    await agent.step()
    second = control.heartbeats[-1]["last_apply"]
    assert (second["result"], second["device_attempt"]) == ("ok", 2)


async def test_a_truncated_download_is_fetched_again_on_the_next_granted_try(
    make_agent: AgentFactory, control: FakeControlPlane, server: ArtifactServer
) -> None:
    """Bytes of the wrong size are remembered and not fetched again for the same
    try; a new try the server grants is a new order."""
    agent = make_agent()
    server.routes["/a"] = ArtifactServer.body(CONTENT[:100])  # short body
    desired = desired_for(CONTENT, server.url("/a"))
    _try(desired, 1, wait=0)
    control.desired = desired
    await agent.step()
    await agent.step()
    assert server.hits["/a"] == 1
    assert control.heartbeats[-1]["last_apply"]["code"] == "size_mismatch"
    server.routes["/a"] = ArtifactServer.body(CONTENT)
    _try(desired, 2, wait=0)
    assert await agent.step() == 0.0
    assert server.hits["/a"] == 2
    assert agent.current is not None


async def test_without_a_try_number_the_agent_backs_off_on_its_own(
    make_agent: AgentFactory,
    control: FakeControlPlane,
    server: ArtifactServer,
    clock: FakeClock,
) -> None:
    """A desired state that names no try (a server that predates per-device
    retries) keeps the agent's own backoff."""
    agent = make_agent(apply_backoff=10.0)
    control.desired = desired_for(CONTENT, server.url("/a"))
    await agent.step()
    await agent.step()
    assert server.hits["/a"] == 1
    assert control.heartbeats[-1]["last_apply"].get("device_attempt") is None
    clock.now += 13
    await agent.step()
    assert server.hits["/a"] == 2
