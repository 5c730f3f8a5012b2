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
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["OwnPostgres", "OwnRabbit", "OwnRabbitCluster", "wait_port"]

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

    def __init__(
        self,
        root: Path | None = None,
        *,
        node: str | None = None,
        cookie: str | None = None,
        peers: list[str] | None = None,
    ) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="xdp47-rabbit-"))
        self._owns_root = root is None
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.dist_port = _free_port()
        self.node = node or f"xdp47f{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = self.root / "server.log"
        (self.root / "enabled_plugins").write_text("[].\n")
        conf = (
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            "disk_free_limit.absolute = 10MB\n"
            "log.console = true\nlog.console.level = warning\n"
            "log.file = false\n"
        )
        if peers:
            # Peer discovery from this list: the first node to boot forms the
            # cluster, the others join it (RabbitMQ's classic_config backend).
            conf += "cluster_formation.peer_discovery_backend = classic_config\n"
            conf += "".join(
                f"cluster_formation.classic_config.nodes.{i} = {peer}\n"
                for i, peer in enumerate(peers, 1)
            )
        (self.root / "rabbitmq.conf").write_text(conf)
        (self.root / "rabbitmq-env.conf").write_text("")
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        cookie_file = home / ".erlang.cookie"
        if not cookie_file.exists():
            cookie_file.write_text(cookie or uuid.uuid4().hex.upper())
            cookie_file.chmod(0o400)

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
            # Two cores are shared with the services under test (and, for a
            # cluster, two more nodes): one scheduler thread, no busy waiting.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1 +sbwt none +sbwtdcpu none"
            " +sbwtdio none",
        }

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl`` (or ``rabbitmq-queues`` with ``queues=True``)
        against this node; its standard output."""
        done = subprocess.run(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"rabbitmqctl {' '.join(args)} on {self.node}: {done.stderr[-2000:]}"
            )
        return done.stdout

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


class OwnRabbitCluster:
    """Three RabbitMQ nodes of the test's own, clustered (one Erlang cookie,
    classic-config peer discovery), each on its own ports and data dir.

    ``amqp_url`` names every node in the multi-host form the services accept
    (``XDP47_AMQP_URL``). Quorum queues declared on it get a member on each node.
    """

    def __init__(self, size: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="xdp47-rabbit-cluster-"))
        cookie = uuid.uuid4().hex.upper()
        tag = uuid.uuid4().hex[:6]
        names = [f"xdp47c{tag}n{i}@localhost" for i in range(size)]
        self.nodes = [
            OwnRabbit(self.root / f"n{i}", node=name, cookie=cookie, peers=names)
            for i, name in enumerate(names)
        ]

    @property
    def amqp_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"amqp://guest:guest@{hosts}/"

    def node_named(self, name: str) -> OwnRabbit:
        return next(n for n in self.nodes if n.node == name)

    def start(self) -> None:
        # One after the other: the first forms the cluster, the next ones find
        # it through peer discovery and join before they open their listener.
        for node in self.nodes:
            node.start()
        self.wait_clustered()

    def wait_clustered(self, within: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        status = ""
        while time.monotonic() < deadline:
            status = self.nodes[0].ctl("cluster_status", "--formatter", "json")
            if all(n.node in status.split("running_nodes", 1)[-1] for n in self.nodes):
                return
            time.sleep(0.5)
        raise AssertionError(f"cluster did not form within {within}s: {status}")

    def queue_leader(self, queue: str, *, vhost: str = "/") -> str:
        """The node that leads quorum queue ``queue`` now (asked of a live node)."""
        for node in self.nodes:
            if not node.running:
                continue
            out = node.ctl(
                "list_queues",
                "-p",
                vhost,
                "name",
                "leader",
                "--quiet",
                "--no-table-headers",
            )
            for line in out.splitlines():
                name, _, leader = line.partition("\t")
                if name.strip() == queue:
                    return leader.strip()
        raise AssertionError(f"no live node knows queue {queue}")

    def queue_members_online(self, queue: str, *, vhost: str = "/") -> int:
        """How many members of quorum queue ``queue`` are online (asked of a live
        node); 0 when no live node answers for it."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                out = node.ctl(
                    "list_queues",
                    "-p",
                    vhost,
                    "name",
                    "online",
                    "--quiet",
                    "--no-table-headers",
                )
            except AssertionError:
                continue  # a node still booting
            for line in out.splitlines():
                name, _, online = line.partition("\t")
                if name.strip() == queue:
                    return online.count("@")
        return 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"no /usr/lib/postgresql/*/bin/{name}")
    return found[-1]


class OwnPostgres(_Server):
    """A PostgreSQL cluster of the test's own (``url``), trust auth, user postgres.

    ``conf`` adds server settings (``-c name=value``). With ``standby_of`` the
    cluster is a streaming replica of that primary: its data dir comes from
    ``pg_basebackup -R`` (which writes ``primary_conninfo`` and the standby
    signal), named ``application_name`` for synchronous replication.
    """

    def __init__(
        self,
        *,
        conf: Mapping[str, str] | None = None,
        standby_of: OwnPostgres | None = None,
        application_name: str = "standby",
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="xdp47-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.log_path = self.root / "server.log"
        self.conf = dict(conf or {})
        shutil.chown(self.root, "postgres", "postgres")
        if standby_of is None:
            command = [
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        else:
            command = [
                _pg_bin("pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(standby_of.port),
                "-U",
                "postgres",
                "-D",
                str(self.data),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-d",
                f"application_name={application_name}",
            ]
        subprocess.run(
            command,
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
                    *(f"-c{k}={v}" for k, v in self.conf.items()),
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

    def start_on_new_port(self) -> None:
        """Start this (killed) cluster's data dir again on a port nobody else
        knows: to read what a dead primary had committed without letting any
        client of the old address write to it."""
        self.kill()
        self.port = _free_port()
        self.start()

    def promote(self) -> None:
        """Make this standby the primary (what a failover manager does)."""
        subprocess.run(
            [_pg_bin("pg_ctl"), "promote", "-w", "-t", "60", "-D", str(self.data)],
            user="postgres",
            group="postgres",
            extra_groups=[],
            capture_output=True,
            check=True,
            timeout=90,
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
