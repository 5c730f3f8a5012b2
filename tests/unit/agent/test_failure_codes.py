"""A failed apply is reported with a code that says why, and a bounded message.

Disk full is real (the staging file is ``/dev/full``, whose writes fail with
ENOSPC); a state dir turning read-only is injected as EROFS at the agent's own
fault points (turning a dir read-only needs a mount, which unit tests do not do).
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.unit.agent.conftest import AgentFactory
from tests.unit.agent.support import (
    ArtifactServer,
    FakeControlPlane,
    desired_for,
    snapshot,
)
from xdp47_agent.agent import Agent
from xdp47_agent.verify import ApplyRefused, Reason, refusal_for_os_error
from xdp47_common.models import FailureCode, describe_reason

V1 = b"one\n" * 64
V2 = b"two\n" * 5000


async def _with_v1(
    agent: Agent, control: FakeControlPlane, server: ArtifactServer
) -> None:
    server.routes["/v1"] = ArtifactServer.body(V1)
    control.desired = desired_for(V1, server.url("/v1"), version="1.0.0")
    await agent.step()
    assert agent.current is not None


async def _report(agent: Agent, control: FakeControlPlane) -> dict[str, Any]:
    """Offer the update set up by the caller, then the heartbeat reporting it."""
    await agent.step()
    control.desired = {"action": "none"}
    await agent.step()
    last: dict[str, Any] = control.heartbeats[-1]["last_apply"]
    assert last["result"] == "failed"
    assert control.heartbeats[-1]["current_version"] == "1.0.0"
    return last


async def test_disk_full_is_reported_as_disk_full(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    agent = make_agent()
    await _with_v1(agent, control, server)
    aid = str(uuid.uuid4())
    # The download's file is /dev/full: every write fails with a real ENOSPC.
    (state_dir / "staging" / f"{aid}.part").symlink_to("/dev/full")
    server.routes["/v2"] = ArtifactServer.body(V2)
    control.desired = desired_for(V2, server.url("/v2"), artifact_id=aid)
    last = await _report(agent, control)
    assert last["code"] == "disk_full"
    assert last["reason"].startswith("disk full: ENOSPC")
    assert (state_dir / "applied_version").read_text() == "1.0.0"


@pytest.mark.parametrize(
    ("point", "code"),
    [
        ("download:chunk", "state_dir_read_only"),  # writing the download
        ("verified", "state_dir_read_only"),  # renaming it into place
        ("current.json:written", "state_dir_read_only"),  # the commit point
    ],
)
async def test_read_only_state_dir_is_reported_as_such(
    make_agent: AgentFactory, control, server, state_dir: Path, point, code
):
    armed = {"on": False}

    def fault(name: str) -> None:
        if armed["on"] and name == point:
            raise OSError(errno.EROFS, "Read-only file system", str(state_dir))

    agent = make_agent(fault=fault)
    await _with_v1(agent, control, server)
    before = snapshot(state_dir)
    armed["on"] = True
    server.routes["/v2"] = ArtifactServer.body(V2)
    control.desired = desired_for(V2, server.url("/v2"))
    last = await _report(agent, control)
    assert last["code"] == code
    assert "EROFS" in last["reason"]
    assert snapshot(state_dir) == before


async def test_staging_cleanup_failing_read_only_still_reports(
    make_agent: AgentFactory, control, server, state_dir: Path, monkeypatch
):
    """The unlink of the partial file in the error handler fails with EROFS too
    (the silent agent of a read-only dir): the refusal is reported regardless."""
    agent = make_agent()
    await _with_v1(agent, control, server)
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.suffix == ".part":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    server.routes["/v2"] = ArtifactServer.body(V2[::-1])
    control.desired = desired_for(V2, server.url("/v2"))
    last = await _report(agent, control)
    assert last["code"] == "sha256_mismatch"
    assert last["reason"].startswith("sha256 mismatch")


async def test_http_status_is_in_the_message(make_agent: AgentFactory, control, server):
    agent = make_agent()
    await _with_v1(agent, control, server)
    control.desired = desired_for(V2, server.url("/gone"))
    last = await _report(agent, control)
    assert (last["code"], last["reason"]) == (
        "download_failed",
        "download failed: HTTP 404",
    )


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (errno.ENOSPC, FailureCode.DISK_FULL),
        (errno.EDQUOT, FailureCode.DISK_FULL),
        (errno.EROFS, FailureCode.STATE_DIR_READ_ONLY),
        (errno.EACCES, FailureCode.STATE_DIR_READ_ONLY),
        (errno.EIO, FailureCode.APPLY_FAILED),
    ],
)
def test_os_errors_map_to_codes(err: int, code: FailureCode):
    refusal = refusal_for_os_error(OSError(err, "boom", "/var/lib/xdp47/x"))
    assert refusal.code.value == code.value
    assert errno.errorcode[err] in refusal.message
    assert "/var/lib/xdp47/x" in refusal.message


def test_message_is_bounded_and_has_no_nul():
    refusal = ApplyRefused(Reason.HTTP_ERROR, "x\x00" * 1000)
    assert len(refusal.message) == 500
    assert "\x00" not in refusal.message


def test_every_code_has_a_sentence():
    for code in FailureCode:
        sentence = describe_reason(code)
        assert sentence
        assert not sentence.startswith("Reported reason")
    assert describe_reason("brand_new_code") == "Reported reason: brand_new_code."
    assert describe_reason(None) is None


async def test_heartbeats_go_on_when_the_seq_cannot_be_stored(
    make_agent: AgentFactory, control, server, state_dir: Path
):
    """A full disk fails the seq block's write too: the agent counts in memory
    and keeps reporting, so the failure reaches the control plane."""
    armed = {"on": False}

    def fault(name: str) -> None:
        if armed["on"] and name.startswith("seq"):
            raise OSError(errno.ENOSPC, "No space left on device", "seq")

    agent = make_agent(fault=fault)
    await _with_v1(agent, control, server)
    armed["on"] = True
    agent.state._seq_ceiling = agent.state._seq_next  # the block is used up
    aid = str(uuid.uuid4())
    (state_dir / "staging" / f"{aid}.part").symlink_to("/dev/full")
    server.routes["/v2"] = ArtifactServer.body(V2)
    control.desired = desired_for(V2, server.url("/v2"), artifact_id=aid)
    last = await _report(agent, control)
    assert last["code"] == "disk_full"
    seqs = [beat["seq"] for beat in control.heartbeats]
    assert seqs == sorted(set(seqs))
