"""A state dir that is really read-only (a read-only bind mount in a private
mount namespace of the agent process, so nothing outside it changes): the agent
keeps heartbeating, keeps its old version, and reports the refused update as
``state_dir_read_only`` (before, it went silent and looked offline; started on
such a dir with a leftover ``seq.tmp`` it never sent a heartbeat)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.agent.test_agent_process import (
    ControlPlane,
    _assert,
    _desired,
    _poll,
    _stop,
    control,
)
from tests.unit.agent.support import snapshot

__all__ = ["control"]  # the fixture, used by name

pytestmark = pytest.mark.integration


def _namespaces_work() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run(
        [unshare, "-rm", "true"], capture_output=True, timeout=10, check=False
    )
    return probe.returncode == 0


def _start(
    control: ControlPlane, state_dir: Path, read_only: bool
) -> subprocess.Popen[bytes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("XDP47_", "NOTIFY_"))
    }
    env.update(
        XDP47_CONTROL_URL=control.url,
        XDP47_TENANT="acme",
        XDP47_DEVICE_LABELS="site=test",
        XDP47_AGENT_TOKEN="claim-token",
        XDP47_STATE_DIR=str(state_dir),
        XDP47_HEARTBEAT_INTERVAL="0.2",
        XDP47_DEVICE_ID="ro-device",
    )
    agent = [sys.executable, "-m", "xdp47_agent.main"]
    if read_only:
        d = shlex.quote(str(state_dir))
        script = (
            f"mount --bind {d} {d} && mount -o remount,bind,ro {d} && exec "
            + shlex.join(agent)
        )
        agent = ["unshare", "-rm", "sh", "-c", script]
    with (state_dir.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(agent, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.skipif(not _namespaces_work(), reason="no user/mount namespaces here")
def test_read_only_state_dir_is_reported_and_heartbeats_go_on(
    control: ControlPlane, tmp_path: Path
):
    state_dir = tmp_path / "state"
    proc = _start(control, state_dir, read_only=False)
    try:
        _poll(lambda: _assert(len(control.heartbeats) >= 2))
    finally:
        assert _stop(proc) == 0
    # What a power cut in the middle of the seq write leaves; recovery cannot
    # remove it from a read-only dir (before, the agent never started then).
    (state_dir / "seq.tmp").write_bytes(b"12")
    before = snapshot(state_dir)

    desired = _desired(control)
    control.desired = desired
    seen = len(control.heartbeats)
    proc = _start(control, state_dir, read_only=True)
    try:

        def reported() -> None:
            beats = control.heartbeats[seen:]
            failed = [b for b in beats if (b.get("last_apply") or {}).get("code")]
            assert failed, beats[-1:] or "no heartbeat yet"
            last = failed[-1]["last_apply"]
            assert last["artifact_id"] == desired["artifact_id"]
            assert last["code"] == "state_dir_read_only", last
            assert "EROFS" in last["reason"]
            # ... and it goes on heartbeating after reporting it.
            assert beats[-1]["seq"] > failed[0]["seq"]

        _poll(reported, timeout=30)
    finally:
        assert _stop(proc) == 0
    assert snapshot(state_dir) == before
    seqs = [b["seq"] for b in control.heartbeats]
    assert seqs == sorted(set(seqs))
