"""A RabbitMQ node and a PostgreSQL cluster of the test's own, to kill and restart.

The fault suite (``tests/faults``) must crash the broker and the database in the
middle of a rollout. The machine's shared services (127.0.0.1:5672 and :5432) are
used by other suites at the same time, so they are never touched: ``OwnRabbit``
and ``OwnPostgres`` start a second node / cluster on free ports with data dirs of
their own, in a process group of their own, and ``kill()`` sends SIGKILL to that
group (a crash as far as the server can tell). ``restart()`` starts the server
again on the same ports and the same data dir, so what the server had made
durable (quorum queues, confirmed messages, committed rows) must be there after.

- RabbitMQ runs as root with its own node name, ports, mnesia and log dirs, no
  plugins and its own Erlang cookie (``HOME`` points into its dir); epmd is shared
  with the system node, which is fine.
- PostgreSQL is Debian's binaries (``initdb``/``postgres`` refuse root), run as
  the ``postgres`` user with a data dir it owns under ``/tmp`` (the test's tmp dir
  is root-only).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["OwnPostgres", "OwnRabbit", "wait_port"]

START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int,
    *,
    within: float = START_TIMEOUT,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"server exited {proc.returncode} at start:\n{tail}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {within}s")


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    # The server was started in a new session: its pid is its process group.
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # The group leader is reaped; wait for the rest of the group (the Erlang VM,
    # the postmaster's backends) to be gone too, so that its ports are closed.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {proc.pid} still alive after SIGKILL")


class _Server:
    """Common lifecycle: ``start`` / ``kill`` / ``restart``, a context manager."""

    proc: subprocess.Popen[bytes] | None = None
    port: int

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the server's whole process group (no clean shutdown)."""
        _kill_group(self.proc)

    def restart(self) -> None:
        """Kill if running, then start again on the same ports and data dir."""
        self.kill()
        self.start()

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
        self.cleanup()


class OwnRabbit(_Server):
    """A RabbitMQ node of the test's own (``amqp_url``), guest/guest on loopback."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="xdp47-rabbit-"))
        self._owns_root = root is None
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.dist_port = _free_port()
        self.node = f"xdp47f{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = self.root / "server.log"
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            "disk_free_limit.absolute = 10MB\n"
            "log.console = true\nlog.console.level = warning\n"
            "log.file = false\n"
        )
        (self.root / "rabbitmq-env.conf").write_text("")
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(uuid.uuid4().hex.upper())
            cookie.chmod(0o400)

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        return keep | {
            "HOME": str(self.root / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        # The AMQP listener opens after the boot steps (queues recovered).
        wait_port(self.port, proc=self.proc, log=self.log_path)

    def cleanup(self) -> None:
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"no /usr/lib/postgresql/*/bin/{name}")
    return found[-1]


class OwnPostgres(_Server):
    """A PostgreSQL cluster of the test's own (``url``), trust auth, user postgres."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="xdp47-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.log_path = self.root / "server.log"
        shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            [
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            user="postgres",
            group="postgres",
            extra_groups=[],
            capture_output=True,
            check=True,
            timeout=120,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    _pg_bin("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.root),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=64MB",
                ],
                user="postgres",
                group="postgres",
                extra_groups=[],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_port(self.port, proc=self.proc, log=self.log_path)
        # The port opens before crash recovery ends: wait until it accepts a query.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            done = subprocess.run(
                [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"PostgreSQL on {self.port} not ready")

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
