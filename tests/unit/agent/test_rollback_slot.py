"""The agent keeps the artifact it applied before in a second slot, so going back
to it needs no download; it refuses a lower version unless the desired state is
marked as a rollback, and reports the refusal (``downgrade``) with a reason."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.unit.agent.conftest import AgentFactory
from tests.unit.agent.support import ArtifactServer, desired_for

V1 = b"release 1.1.0\n" * 64
V2 = b"release 2.0.0\n" * 64


async def _apply_v1_then_v2(
    agent, control, server: ArtifactServer
) -> tuple[dict[str, object], dict[str, object]]:
    server.routes["/v1"] = ArtifactServer.body(V1)
    server.routes["/v2"] = ArtifactServer.body(V2)
    v1 = desired_for(V1, server.url("/v1"), version="1.1.0")
    v2 = desired_for(V2, server.url("/v2"), version="2.0.0")
    control.desired = v1
    await agent.step()
    control.desired = v2
    await agent.step()
    return v1, v2


async def test_the_replaced_artifact_is_kept_in_the_previous_slot(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent()
    v1, v2 = await _apply_v1_then_v2(agent, control, server)
    assert (state_dir / "applied_version").read_text() == "2.0.0"
    record = json.loads((state_dir / "previous.json").read_bytes())
    assert (record["artifact_id"], record["version"]) == (v1["artifact_id"], "1.1.0")
    assert (state_dir / f"previous_{v1['artifact_id']}").read_bytes() == V1
    assert (state_dir / f"applied_{v2['artifact_id']}").read_bytes() == V2


async def test_a_rollback_to_the_previous_artifact_needs_no_download(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent()
    v1, v2 = await _apply_v1_then_v2(agent, control, server)
    assert server.hits["/v1"] == 1
    control.desired = {**v1, "rollback": True, "rollout_id": v2["rollout_id"]}
    await agent.step()
    assert (state_dir / "applied_version").read_text() == "1.1.0"
    assert server.hits["/v1"] == 1  # from the slot
    await agent.step()
    last = control.heartbeats[-1]
    assert last["current_artifact_id"] == v1["artifact_id"]
    assert last["last_apply"]["result"] == "ok"
    # The slots swapped: 2.0.0 is now the previous one.
    record = json.loads((state_dir / "previous.json").read_bytes())
    assert record["artifact_id"] == v2["artifact_id"]
    assert (state_dir / f"previous_{v2['artifact_id']}").read_bytes() == V2
    assert not (state_dir / f"previous_{v1['artifact_id']}").exists()


async def test_a_slot_that_does_not_match_its_sha256_is_downloaded_again(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent()
    v1, _ = await _apply_v1_then_v2(agent, control, server)
    (state_dir / f"previous_{v1['artifact_id']}").write_bytes(b"tampered")
    control.desired = {**v1, "rollback": True}
    await agent.step()
    assert server.hits["/v1"] == 2
    applied = state_dir / f"applied_{v1['artifact_id']}"
    assert hashlib.sha256(applied.read_bytes()).hexdigest() == v1["sha256"]


async def test_an_unmarked_downgrade_is_refused_with_a_reason(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent()
    v1, v2 = await _apply_v1_then_v2(agent, control, server)
    older = {**v1, "rollout_id": v2["rollout_id"], "attempt": 3}
    control.desired = older
    await agent.step()
    await agent.step()
    assert (state_dir / "applied_version").read_text() == "2.0.0"
    last = control.heartbeats[-1]
    assert last["current_artifact_id"] == v2["artifact_id"]
    apply = last["last_apply"]
    assert (apply["result"], apply["code"]) == ("failed", "downgrade")
    assert apply["artifact_id"] == v1["artifact_id"]
    assert (apply["rollout_id"], apply["attempt"]) == (v2["rollout_id"], 3)
    assert apply["reason"] == (
        "downgrade: version 1.1.0 is lower than the applied 2.0.0 and the "
        "desired state is not a rollback"
    )


async def test_versions_compare_as_versions_not_as_text(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent()
    server.routes["/a"] = ArtifactServer.body(V1)
    server.routes["/b"] = ArtifactServer.body(V2)
    control.desired = desired_for(V1, server.url("/a"), version="1.9.0")
    await agent.step()
    control.desired = desired_for(V2, server.url("/b"), version="1.10.0")
    await agent.step()
    assert (state_dir / "applied_version").read_text() == "1.10.0"


async def test_free_form_versions_are_not_ordered(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent()
    server.routes["/a"] = ArtifactServer.body(V1)
    server.routes["/b"] = ArtifactServer.body(V2)
    control.desired = desired_for(V1, server.url("/a"), version="zebra build")
    await agent.step()
    control.desired = desired_for(V2, server.url("/b"), version="alpha build")
    await agent.step()
    assert (state_dir / "applied_version").read_text() == "alpha build"
