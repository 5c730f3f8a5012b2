"""``xdp47 demo --exit-when-done`` in both modes, as CI's smoke test.

Each run is a real subprocess: the external mode against the test PostgreSQL (a
fresh database of its own) and RabbitMQ (a namespace of its own), the embedded
mode with a PostgreSQL it starts from the pgserver wheel in a temp folder. A run
must exit 0, name the three terminal statuses (the subtly bad release stopped by
the telemetry analysis in wave 1, with its numbers), and leave no process behind: every
descendant seen while it ran, and the embedded postmaster (which pg_ctl
detaches from the tree), must be gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
import pytest

from tests.support.amqp import drop_namespace
from tests.support.services import with_database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RUN_TIMEOUT = 240.0
DEVICES = 8


@dataclass
class DemoRun:
    code: int
    output: str
    pids: set[int] = field(default_factory=set)
    postmaster: int | None = None


def _postmaster(demo_dir: Path) -> int | None:
    """The running postmaster's pid (initdb's single-user backend writes -pid)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((demo_dir / "pg" / "postmaster.pid").read_text().split()[0])
        return pid if pid > 0 else None
    return None


def _run_demo(env: dict[str, str], demo_dir: Path) -> DemoRun:
    """Run the demo to its end, noting every descendant pid on the way."""
    log = demo_dir.parent / f"{demo_dir.name}.out"
    with log.open("wb") as out:
        proc = psutil.Popen(
            [
                *(sys.executable, "-m", "xdp47_cli", "demo", "--exit-when-done"),
                *("--devices", str(DEVICES), "--dir", str(demo_dir)),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        run = DemoRun(code=-1, output="")
        deadline = time.monotonic() + RUN_TIMEOUT
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(psutil.Error):
                    run.pids |= {c.pid for c in proc.children(recursive=True)}
                run.postmaster = _postmaster(demo_dir) or run.postmaster
                time.sleep(0.1)  # sampling the process tree, not waiting on a result
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    run.code = proc.returncode
    run.output = log.read_text(errors="replace")
    return run


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _assert_clean_run(run: DemoRun) -> None:
    assert run.code == 0, run.output[-3000:]
    assert "completed: all 4 waves passed" in run.output, run.output[-3000:]
    assert "2.0.0-bad failed" in run.output
    assert "result: good release 1.1.0 completed, bad release 2.0.0-bad failed" in (
        run.output
    )
    # The subtly bad release: healthy by its own status, stopped by the analysis
    # in wave 1, the closing line carrying the metric and both means.
    assert (
        "subtly bad release 1.2.0-subtle stopped by the analysis in wave 1 "
        "although require_ok alone would pass it (wave 1: analysis failed: "
        "error_rate: updated - baseline = "
    ) in run.output, run.output[-3000:]
    closing = run.output[run.output.index("result: good release") :]
    assert "updated mean 0.1" in closing
    assert "baseline mean 0.0" in closing
    left = sorted(pid for pid in run.pids if _alive(pid))
    assert not left, f"processes left behind: {left}"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDP47_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def test_demo_external_mode(
    server_db_url: str, amqp_url: str, amqp_namespace: str, tmp_path: Path
) -> None:
    database = f"xdp47_demo_{uuid.uuid4().hex[:8]}"
    namespace = f"{amqp_namespace}_demo"
    conn = await asyncpg.connect(server_db_url)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    env = _env() | {
        "XDP47_DB_URL": with_database(server_db_url, database),
        "XDP47_AMQP_URL": amqp_url,
        "XDP47_AMQP_NAMESPACE": namespace,
    }
    try:
        run = await asyncio.to_thread(_run_demo, env, tmp_path / "demo")
    finally:
        conn = await asyncpg.connect(server_db_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()
        await drop_namespace(amqp_url, namespace)
    assert "external mode" in run.output
    assert len(run.pids) >= 3, "api, ingest and scheduler run as processes"
    _assert_clean_run(run)


async def test_demo_embedded_mode(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    env = _env() | {"XDP47_DEMO_DIR": str(demo_dir)}
    run = await asyncio.to_thread(_run_demo, env, demo_dir)
    assert "embedded mode" in run.output
    assert run.postmaster is not None, "the demo started its own PostgreSQL"
    try:
        _assert_clean_run(run)
        assert not _alive(run.postmaster), "the pgserver postmaster is still running"
        assert not (demo_dir / "pg" / "postmaster.pid").exists()
    finally:
        if _alive(run.postmaster):
            psutil.Process(run.postmaster).terminate()


def _started_demo(env: dict[str, str], demo_dir: Path, *flags: str) -> psutil.Popen:
    log = demo_dir.parent / f"{demo_dir.name}.out"
    with log.open("wb") as out:
        return psutil.Popen(
            [
                *(sys.executable, "-m", "xdp47_cli", "demo", *flags),
                *("--devices", str(DEVICES), "--dir", str(demo_dir)),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _text(log: Path) -> str:
    """The output with its line wrapping undone (rich wraps at 80 columns)."""
    return " ".join(log.read_text(errors="replace").split())


def _interrupt_when(proc: psutil.Popen, log: Path, line: str) -> str:
    """SIGINT once ``line`` is in the output; the whole output after exit."""
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while line not in _text(log):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, (
                f"never printed {line!r}: " + log.read_text(errors="replace")[-3000:]
            )
            time.sleep(0.2)  # polling the output for a line
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return _text(log)


async def test_demo_off_a_terminal_says_it_stops_and_ctrl_c_exits_130(
    tmp_path: Path,
) -> None:
    """Not on a terminal the demo says, next to the UI address, that it stops
    after its script and how to keep it up; with --keep-running it stays up
    after the script and Ctrl-C then exits 130, as anywhere else."""
    env = _env()
    plain = tmp_path / "plain"
    proc = _started_demo(env | {"XDP47_DEMO_DIR": str(plain)}, plain)
    output = await asyncio.to_thread(
        _interrupt_when, proc, tmp_path / "plain.out", "--keep-running"
    )
    assert "not on a terminal: the demo stops once its script is done; run it " in (
        output
    )
    assert proc.returncode == 130, output[-3000:]
    kept = tmp_path / "kept"
    proc = _started_demo(env | {"XDP47_DEMO_DIR": str(kept)}, kept, "--keep-running")
    output = await asyncio.to_thread(
        _interrupt_when, proc, tmp_path / "kept.out", "Ctrl-C stops everything"
    )
    assert "not on a terminal" not in output
    assert "interrupted: stopping the fleet and the services" in output
    assert "demo stopped: fleet, services and database are down" in output
    assert proc.returncode == 130, output[-3000:]
