"""Run the real console commands (``xdp47-api``, ``xdp47-ingest``,
``xdp47-scheduler``, ``xdp47-agent``, ``xdp47-demoapp``, ``xdp47-migrate``) as
subprocesses for the tests that need whole processes.

Owns the one harness the suites share: free ports, an environment cleaned of the
caller's ``XDP47_*`` variables, stdout and stderr captured to a log file per
process under the test's tmp dir, bounded readiness polling (``/readyz``), and a
stop that sends SIGTERM and then SIGKILL after a timeout, always by the pid it
started. Every process started here is registered until it is reaped, so a
failing test can attach the log tails (``log_sections``) and an interpreter that
exits with processes still running kills them (``atexit``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

__all__ = [
    "BIN",
    "ManagedProcess",
    "ProcessGroup",
    "clean_env",
    "free_port",
    "leaked_secrets",
    "log_sections",
    "run_migrate",
    "wait_until",
]

BIN = Path(sys.executable).parent
STOP_TIMEOUT = 15.0
READY_TIMEOUT = 90.0
TAIL_LINES = 40

# pid -> process, for the failure report and the last-resort kill at exit.
_LIVE: dict[int, ManagedProcess] = {}
# Every log file a process of this run wrote, for the end-of-run secret scan.
_LOGS: set[Path] = set()
# An XDP47 secret (API token or device credential) as it would appear unmasked.
_SECRET = re.compile(r"xdp47[td]_[0-9A-Za-z]{8,}")


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**overrides: str) -> dict[str, str]:
    """This environment without ``XDP47_*`` and ``NOTIFY_SOCKET``, plus
    ``overrides``: a service sees only the settings the test gives it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("XDP47_") and k != "NOTIFY_SOCKET"
    }
    return env | overrides


def wait_until(
    check: Callable[[], object], *, within: float = 30.0, every: float = 0.1
) -> None:
    """Call ``check()`` until it stops raising AssertionError or an httpx
    transport error; re-raise the last one after ``within`` seconds."""
    for attempt in Retrying(
        stop=stop_after_delay(within),
        wait=wait_fixed(every),
        retry=retry_if_exception_type((AssertionError, httpx.TransportError)),
        reraise=True,
    ):
        with attempt:
            check()


@dataclass
class ManagedProcess:
    """One started command; ``stop``/``kill`` act on exactly its pid."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str | None = None
    popen: subprocess.Popen[bytes] = field(init=False)
    _terminated: bool = field(default=False, init=False)

    def spawn(self) -> ManagedProcess:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        _LIVE[self.popen.pid] = self
        _LOGS.add(self.log_path)
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        code = self.popen.poll()
        state = "running" if code is None else f"exited {code}"
        return f"{self.name} (pid {self.pid}, {state}, log {self.log_path})"

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``ready_url`` until it answers 200; fail with the log tail when
        the process exits first or the time is up."""
        if self.ready_url is None:
            return
        url = self.ready_url

        def ready() -> None:
            assert self.running, "exited before it was ready"
            assert httpx.get(url, timeout=2).status_code == 200, f"{url} not 200"

        try:
            wait_until(ready, within=timeout, every=0.1)
        except (AssertionError, httpx.TransportError) as exc:
            raise AssertionError(
                f"{self.describe()} not ready: {exc}\n{self.log_tail()}"
            ) from None

    def _reap(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to exit on its own (a command expected to fail
        fast); after ``timeout`` kill it and fail with its log tail."""
        code = self._reap(timeout)
        if code is None:
            self.kill()
            raise AssertionError(
                f"{self.describe()} did not exit within {timeout}s\n{self.log_tail()}"
            )
        _LIVE.pop(self.pid, None)
        return code

    def terminate(self) -> None:
        """Send SIGTERM once (a second one makes uvicorn skip its shutdown)."""
        if self.running and not self._terminated:
            self._terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL when it has not exited after ``timeout``."""
        self.terminate()
        code = self._reap(timeout)
        if code is None:
            return self.kill()
        _LIVE.pop(self.pid, None)
        return code

    def kill(self) -> int:
        """SIGKILL now (a crash, as far as the process can tell)."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        code = self.popen.wait(timeout=STOP_TIMEOUT)
        _LIVE.pop(self.pid, None)
        return code


class ProcessGroup:
    """Processes started for one fixture; ``stop_all`` stops them newest first.

    Use it as a context manager (or call ``stop_all`` in a finalizer) so that no
    process outlives the fixture, whatever the test did.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[ManagedProcess] = []

    def start(
        self,
        name: str,
        command: str | Sequence[str],
        env: Mapping[str, str],
        *,
        ready_url: str | None = None,
        wait: bool = True,
        ready_timeout: float = READY_TIMEOUT,
    ) -> ManagedProcess:
        """Start ``command`` (a console script name in the venv, or an argv)
        with exactly ``env``; wait for ``ready_url`` unless ``wait`` is false."""
        argv = [str(BIN / command)] if isinstance(command, str) else list(command)
        proc = ManagedProcess(
            name, argv, dict(env), self.log_dir / f"{name}.log", ready_url
        ).spawn()
        self.processes.append(proc)
        if wait:
            proc.wait_ready(ready_timeout)
        return proc

    def restart(self, proc: ManagedProcess, *, wait: bool = True) -> ManagedProcess:
        """Start ``proc``'s command again with its env, logging to the same file."""
        if proc.running:
            proc.stop()
        again = ManagedProcess(
            proc.name, proc.argv, proc.env, proc.log_path, proc.ready_url
        ).spawn()
        self.processes.append(again)
        if wait:
            again.wait_ready()
        return again

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> dict[str, int]:
        """SIGTERM every running process (newest first), then reap each, with
        SIGKILL for those still running after ``timeout``; exit codes by name."""
        running = [p for p in reversed(self.processes) if p.running]
        for proc in running:
            proc.terminate()
        codes = {proc.name: proc.stop(timeout) for proc in running}
        for proc in self.processes:
            if not proc.running:
                _LIVE.pop(proc.pid, None)
        return codes

    def tails(self, lines: int = TAIL_LINES) -> str:
        return "\n\n".join(
            f"--- {p.describe()}\n{p.log_tail(lines)}" for p in self.processes
        )

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def leaked_secrets() -> list[str]:
    """``log: secret…`` for every unmasked XDP47 secret in the log of any process
    this run started (every service masks them, see ``xdp47_common.redact``)."""
    found = []
    for path in sorted(_LOGS):
        with contextlib.suppress(FileNotFoundError):
            for match in _SECRET.finditer(path.read_text(errors="replace")):
                found.append(f"{path}: {match.group()[:12]}…")
    return found


def log_sections(lines: int = TAIL_LINES) -> Iterator[tuple[str, str]]:
    """(title, log tail) of every process still registered, for a test report."""
    for proc in list(_LIVE.values()):
        yield f"log of {proc.describe()}", proc.log_tail(lines)


def run_migrate(db_url: str, log_dir: Path, timeout: float = 60.0) -> str:
    """Run ``xdp47-migrate`` against ``db_url``; return its output or fail with it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(BIN / "xdp47-migrate")],
        env=clean_env(XDP47_DB_URL=db_url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    (log_dir / "migrate.log").write_text(output)
    assert done.returncode == 0, f"xdp47-migrate exited {done.returncode}: {output}"
    return output


@atexit.register
def _kill_leftovers() -> None:
    # Last resort when a finalizer never ran (e.g. the run was interrupted).
    for proc in list(_LIVE.values()):
        if proc.running:
            with contextlib.suppress(Exception):
                proc.kill()
