"""The ``xdp47-agent`` process against a local HTTP control plane: sd_notify
READY/STOPPING, clean exit on SIGTERM, and convergence after ``kill -9`` in the
middle of a download; the installer child (``xdp47_agent.installer``): its
refusals reported as in-process ones, and it ends with its parent."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

pytestmark = pytest.mark.integration

CONTENT = os.urandom(256 * 1024)


class ControlPlane(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.heartbeats: list[dict[str, Any]] = []
        self.desired: dict[str, Any] = {"action": "none", "heartbeat_interval": 0.2}
        self.hold_download = threading.Event()  # set: the file stalls half-way
        self.half_sent = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ControlPlane
    protocol_version = "HTTP/1.1"

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/devices/claim":
            self._json(
                201,
                {
                    "device_id": body["device_id"],
                    "tenant": body["tenant"],
                    "credential": "c1",
                },
            )
        elif self.path.endswith("/heartbeat"):
            self.server.heartbeats.append(body)
            self._json(202, self.server.desired)
        else:
            self._json(404, {})

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(CONTENT)))
        self.end_headers()
        half = len(CONTENT) // 2
        self.wfile.write(CONTENT[:half])
        self.wfile.flush()
        if self.server.hold_download.is_set():
            self.server.half_sent.set()
            self.server.release.wait(30)
            return
        self.wfile.write(CONTENT[half:])

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def control() -> Iterator[ControlPlane]:
    server = ControlPlane()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def _start_agent(
    control: ControlPlane, state_dir: Path, notify: str
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
        XDP47_DOWNLOAD_STALL_TIMEOUT="20",
        NOTIFY_SOCKET=notify,
    )
    # Logs go to a file (not a pipe nobody drains) for a failing test to show.
    with (state_dir.parent / "agent.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "xdp47_agent.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _poll(check: Any, timeout: float = 20) -> None:
    for attempt in Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.05),
        retry=retry_if_exception_type(AssertionError),
        reraise=True,
    ):
        with attempt:
            check()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    yield path, sock
    sock.close()


def _desired(control: ControlPlane) -> dict[str, Any]:
    """An update to CONTENT, served by ``control``."""
    return {
        "action": "update",
        "artifact_id": str(uuid.uuid4()),
        "version": "2.0.0",
        "uri": control.url + "/files/app",
        "sha256": hashlib.sha256(CONTENT).hexdigest(),
        "size": len(CONTENT),
        "heartbeat_interval": 0.2,
    }


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def test_notify_update_and_clean_sigterm(control, notify_socket, tmp_path: Path):
    path, sock = notify_socket
    state_dir = tmp_path / "state"
    proc = _start_agent(control, state_dir, path)
    try:
        assert sock.recv(64) == b"READY=1"
        _poll(lambda: _assert(len(control.heartbeats) >= 1))
        desired = _desired(control)
        control.desired = desired
        _poll(lambda: _assert(control.heartbeats[-1]["current_version"] == "2.0.0"))
        assert (state_dir / "applied_version").read_text() == "2.0.0"
    finally:
        code = _stop(proc)
    assert code == 0
    assert sock.recv(64) == b"STOPPING=1"


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _installer_of(proc: subprocess.Popen[bytes]) -> int:
    """The pid of the agent's installer child, once it runs."""
    found: list[int] = []

    def running() -> None:
        found[:] = _children(proc.pid)
        assert found

    _poll(running)
    with open(f"/proc/{found[0]}/cmdline", "rb") as f:
        assert b"xdp47_agent.installer" in f.read()
    return found[0]


def _start_held(
    control: ControlPlane, state_dir: Path, notify: str
) -> subprocess.Popen[bytes]:
    """An agent told to install CONTENT, whose download stalls half-way."""
    control.hold_download.set()
    control.desired = _desired(control)
    return _start_agent(control, state_dir, notify)


def _installer_mid_download(
    control: ControlPlane, state_dir: Path, proc: subprocess.Popen[bytes]
) -> int:
    assert control.half_sent.wait(20)
    _poll(lambda: _assert(any((state_dir / "staging").iterdir())))
    return _installer_of(proc)


def test_kill_9_mid_download_then_restart_converges(control, notify_socket, tmp_path):
    path, _ = notify_socket
    state_dir = tmp_path / "state"
    proc = _start_held(control, state_dir, path)
    try:
        installer = _installer_mid_download(control, state_dir, proc)
    finally:
        proc.kill()
        proc.wait(timeout=20)
    # The installer child sees its parent gone (the end of its stdin) and stops.
    _poll(lambda: _assert(_gone(installer)))
    assert not (state_dir / "applied_version").exists()
    seqs_before = [hb["seq"] for hb in control.heartbeats]
    control.hold_download.clear()
    control.release.set()
    proc = _start_agent(control, state_dir, path)
    try:
        _poll(lambda: _assert(control.heartbeats[-1]["current_version"] == "2.0.0"))
    finally:
        assert _stop(proc) == 0
    assert (state_dir / "applied_version").read_text() == "2.0.0"
    assert list((state_dir / "staging").iterdir()) == []
    seqs_after = [hb["seq"] for hb in control.heartbeats[len(seqs_before) :]]
    assert min(seqs_after) > max(seqs_before)


def test_sigterm_mid_download_stops_the_installer(control, notify_socket, tmp_path):
    path, sock = notify_socket
    state_dir = tmp_path / "state"
    proc = _start_held(control, state_dir, path)
    try:
        assert sock.recv(64) == b"READY=1"
        installer = _installer_mid_download(control, state_dir, proc)
    finally:
        code = _stop(proc)
    assert code == 0
    assert sock.recv(64) == b"STOPPING=1"
    assert _gone(installer)
    # Stopped between two reads: the partial download is removed.
    assert list((state_dir / "staging").iterdir()) == []
    assert not (state_dir / "applied_version").exists()


def test_installer_refusal_is_reported_like_in_process(
    control, notify_socket, tmp_path
):
    path, _ = notify_socket
    state_dir = tmp_path / "state"
    desired = _desired(control)
    desired["sha256"] = "0" * 64
    control.desired = desired
    proc = _start_agent(control, state_dir, path)
    try:
        _poll(lambda: _assert(any(hb["last_apply"] for hb in control.heartbeats)))
        last = next(hb["last_apply"] for hb in control.heartbeats if hb["last_apply"])
    finally:
        assert _stop(proc) == 0
    assert last["result"] == "failed"
    assert last["code"] == "sha256_mismatch"
    got = hashlib.sha256(CONTENT).hexdigest()
    assert last["reason"] == f"sha256 mismatch: got {got}"
    assert last["artifact_id"] == desired["artifact_id"]
    assert list((state_dir / "staging").iterdir()) == []


def _assert(condition: bool) -> None:
    assert condition
