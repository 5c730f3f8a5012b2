"""Installing an artifact in a short-lived child process.

``xdp47-agent`` keeps only its control loop (claim, heartbeat, the checks on a
desired state) in the long-running process; download, SHA256, signature and
commit (``applying.fetch_and_commit``) run in ``python -m
xdp47_agent.installer``, so what only an install needs (hashlib's OpenSSL,
PyNaCl, the download's buffers) is loaded there and gone when it exits, and a
crash while installing takes only the child down.

The exchange, over the child's stdin and stdout:

- request: one JSON object, ``{"desired": DesiredState, "identity":
  {"device_id", "credential", "ingest_url"} | null, "current": current.json |
  null}``; the child reads its configuration from the same ``XDP47_*``
  environment as its parent (``load_config``).
- result: one JSON line, and the exit status: ``{"applied": current.json}``
  (0), ``{"refused": {"reason", "detail"}}`` (1: ``verify.ApplyRefused``, as
  reported in ``last_apply``), ``{"os_error": {"errno", "strerror",
  "filename"}}`` (1: writing the state dir failed; the parent decides whether
  it failed after the commit point). No line (a crash, a kill) is an I/O error
  naming the exit status.

While the child works, the parent pings the systemd watchdog and answers
SIGTERM by sending SIGTERM to the child, which stops between two reads of the
download and removes the partial file. The parent keeps the child's stdin open
while it runs: the child stops the same way when it reads the end of it (the
parent died, ``kill -9``), and holds ``install.lock`` in the state dir while it
works, so the child of a restarted agent waits for such a leftover one to end
rather than write the same staging file beside it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from xdp47_agent.applied import Applied
from xdp47_agent.state import Identity
from xdp47_agent.verify import ApplyRefused
from xdp47_agent.wire import DesiredState

__all__ = ["ChildInstaller", "main"]

_MODULE = "xdp47_agent.installer"
_MAX_RESULT = 1 << 16
_STOP_GRACE = 30.0
_EXIT_STOPPED = 128 + 15
_LOCK = "install.lock"
_CHECK_EVERY = 0.2


class Waiter(Protocol):
    """``stopping.StopSignal``'s wait on a file descriptor."""

    def readable(self, fd: int, seconds: float) -> bool: ...


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child_env() -> dict[str, str]:
    """The parent's environment, with this package importable (a .deb puts it
    on ``sys.path`` from its entry point only) and no systemd socket: the
    parent alone speaks to systemd."""
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _package_root() + (os.pathsep + path if path else "")
    return env


class ChildInstaller:
    """``Agent``'s installer in the ``xdp47-agent`` process: one child per
    apply.

    Args:
        waiter: ends a wait early on SIGTERM (``Stopped``), pings meanwhile.
        deadline: seconds after which a child that has not answered is stopped.
        python: the interpreter to run the child with.
    """

    def __init__(
        self, waiter: Waiter, *, deadline: float, python: str = sys.executable
    ) -> None:
        self._waiter = waiter
        self._deadline = deadline
        self._python = python

    async def __call__(
        self,
        desired: DesiredState,
        aid: UUID,
        *,
        identity: Identity | None,
        current: Applied | None,
    ) -> Applied:
        # Never suspends: the xdp47-agent process has no event loop (``drive``).
        return self.install(desired, identity=identity, current=current)

    def install(
        self,
        desired: DesiredState,
        *,
        identity: Identity | None,
        current: Applied | None,
    ) -> Applied:
        """Run one child for ``desired`` and return what it applied."""
        import subprocess  # only when installing

        request = {
            "desired": desired.to_json(),
            "identity": None
            if identity is None
            else {
                "device_id": identity.device_id,
                "credential": identity.credential,
                "ingest_url": identity.ingest_url,
            },
            "current": None if current is None else json.loads(current.to_json()),
        }
        child = subprocess.Popen(
            # -P: the working directory (the image's is the writable state dir)
            # is not put on sys.path, so nothing there shadows a module.
            [self._python, "-P", "-m", _MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_env(),
            close_fds=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            try:
                child.stdin.write(json.dumps(request).encode() + b"\n")
                child.stdin.flush()
            except BrokenPipeError:
                pass  # it died at once: its status tells
            out = self._read(child.stdout.fileno())
            status = child.wait(_STOP_GRACE)
        except BaseException:
            _end(child)
            raise
        finally:
            child.stdout.close()
            with contextlib.suppress(OSError):
                child.stdin.close()
        return _result(out, status)

    def _read(self, fd: int) -> bytes:
        import time

        end = time.monotonic() + self._deadline
        out = bytearray()
        while True:
            left = end - time.monotonic()
            if left <= 0 or not self._waiter.readable(fd, left):
                raise OSError(
                    errno.ETIMEDOUT,
                    f"installer gave no result in {self._deadline:.0f}s",
                )
            chunk = os.read(fd, _MAX_RESULT)
            if not chunk:
                return bytes(out)
            out += chunk
            if len(out) > _MAX_RESULT:
                raise OSError(errno.EMSGSIZE, "installer result too large")


def _end(child: Any) -> None:
    """SIGTERM, then SIGKILL when it does not stop within the grace."""
    import subprocess

    if child.poll() is None:
        child.terminate()
        try:
            child.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _result(out: bytes, status: int) -> Applied:
    """The child's answer as ``fetch_and_commit``'s outcome.

    Raises:
        ApplyRefused: the child refused the artifact.
        OSError: writing the state dir failed, or the child gave no answer.
    """
    line = out.strip().splitlines()[-1] if out.strip() else b""
    try:
        answer = json.loads(line) if line else None
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        if "applied" in answer:
            return Applied.from_json(json.dumps(answer["applied"]).encode())
        refused = answer.get("refused")
        if isinstance(refused, dict):
            raise ApplyRefused(str(refused["reason"]), str(refused.get("detail", "")))
        failed = answer.get("os_error")
        if isinstance(failed, dict):
            raise OSError(
                failed.get("errno") or 0,
                str(failed.get("strerror") or "I/O error"),
                failed.get("filename"),
            )
    raise OSError(errno.EIO, f"installer exited with status {status} and no result")


# -- the child -----------------------------------------------------------------


def _answer(result: dict[str, Any], status: int) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    raise SystemExit(status)


class _Parent:
    """The end of stdin means the parent is gone: stop (checked from ``tick``)."""

    def __init__(self, fd: int, tick: Callable[[], None]) -> None:
        self._fd = fd
        self._tick = tick
        self._checked = 0.0

    def tick(self) -> None:
        import select
        import time

        self._tick()
        now = time.monotonic()
        if now - self._checked < _CHECK_EVERY:
            return
        self._checked = now
        ready, _, _ = select.select([self._fd], [], [], 0)
        if ready and not os.read(self._fd, 512):
            from xdp47_agent.http import Stopped

            raise Stopped()


def _lock(state_dir: Path, tick: Callable[[], None]) -> int:
    """Hold ``install.lock`` (an install left by a parent that died may still
    run until it sees that); released when the child exits."""
    import fcntl
    import time

    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            tick()
            time.sleep(0.05)


async def _install(request: dict[str, Any], tick: Callable[[], None]) -> Applied:
    from xdp47_agent.applying import fetch_and_commit
    from xdp47_agent.blocking import BlockingHttp
    from xdp47_agent.config import load_config
    from xdp47_agent.download import limits_of
    from xdp47_agent.state import StateDir

    config = load_config()
    desired = DesiredState.from_json(request["desired"])
    assert desired.artifact_id is not None
    raw_identity = request.get("identity")
    identity = None if raw_identity is None else Identity(**raw_identity)
    raw_current = request.get("current")
    current = (
        None
        if raw_current is None
        else Applied.from_json(json.dumps(raw_current).encode())
    )
    _lock(config.state_dir, tick)
    http = BlockingHttp(tick=tick)
    try:
        return await fetch_and_commit(
            desired,
            desired.artifact_id,
            config=config,
            state=StateDir(config.state_dir),
            client=http,
            limits=limits_of(config),
            fault=lambda point: None,
            identity=identity,
            current=current,
        )
    finally:
        http.close()


def main() -> None:
    """``python -m xdp47_agent.installer``: one install, its result on stdout."""
    from xdp47_agent.blocking import drive
    from xdp47_agent.http import Stopped
    from xdp47_agent.logs import configure_logging
    from xdp47_agent.stopping import StopSignal

    stop = StopSignal()
    level = os.environ.get("XDP47_LOG_LEVEL", "INFO").strip().upper()
    configure_logging(level)
    request = json.loads(sys.stdin.buffer.readline())
    parent = _Parent(sys.stdin.fileno(), stop.tick)
    try:
        applied = drive(_install(request, parent.tick))
    except Stopped:
        raise SystemExit(_EXIT_STOPPED) from None
    except ApplyRefused as exc:
        _answer({"refused": {"reason": exc.reason, "detail": exc.detail}}, 1)
    except OSError as exc:
        _answer(
            {
                "os_error": {
                    "errno": exc.errno,
                    "strerror": exc.strerror or str(exc),
                    "filename": None if exc.filename is None else str(exc.filename),
                }
            },
            1,
        )
    _answer({"applied": json.loads(applied.to_json())}, 0)


if __name__ == "__main__":
    main()
