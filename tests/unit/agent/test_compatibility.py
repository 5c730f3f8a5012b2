"""The agent refuses an artifact whose declared compatibility does not include
its own properties, before downloading a byte, and reports ``incompatible``; it
applies one that does; and it claims again when started with other labels or
properties."""

from __future__ import annotations

from pathlib import Path

from tests.unit.agent.conftest import AgentFactory
from tests.unit.agent.support import ArtifactServer, desired_for

V1 = b"arm build\n" * 64


async def test_an_incompatible_artifact_is_refused_without_download(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent(device_properties={"arch": "x86_64", "device_type": "k2"})
    server.routes["/v1"] = ArtifactServer.body(V1)
    control.desired = {
        **desired_for(V1, server.url("/v1"), version="1.0.0"),
        "compatible": {"arch": ["arm64"]},
    }
    await agent.step()
    await agent.step()
    last = control.heartbeats[-1]["last_apply"]
    assert (last["result"], last["code"]) == ("failed", "incompatible")
    assert last["reason"] == (
        'incompatible: declared {"arch":["arm64"]}, device is '
        '{"arch":"x86_64","device_type":"k2"}'
    )
    assert server.hits.get("/v1", 0) == 0
    assert not (state_dir / "applied_version").exists()
    # Asked again, it is not fetched again either.
    await agent.step()
    assert server.hits.get("/v1", 0) == 0


async def test_a_compatible_artifact_is_applied(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent(device_properties={"arch": "arm64"})
    server.routes["/v1"] = ArtifactServer.body(V1)
    control.desired = {
        **desired_for(V1, server.url("/v1"), version="1.0.0"),
        "compatible": {"arch": ["arm64", "armhf"]},
    }
    await agent.step()
    assert (state_dir / "applied_version").read_text() == "1.0.0"


async def test_new_labels_or_properties_claim_again(
    make_agent: AgentFactory, control, state_dir: Path
):
    control.desired = {"action": "none"}
    await make_agent(device_labels={"ring": "main"}).step()
    await make_agent(device_labels={"ring": "main"}).step()
    assert len(control.claims) == 1
    await make_agent(device_labels={"ring": "canary"}).step()
    await make_agent(
        device_labels={"ring": "canary"}, device_properties={"arch": "arm64"}
    ).step()
    assert [c["labels"] for c in control.claims] == [
        {"ring": "main"},
        {"ring": "canary"},
        {"ring": "canary"},
    ]
    assert control.claims[-1]["properties"] == {"arch": "arm64"}
    assert len({c["device_id"] for c in control.claims}) == 1
