"""Every console command answers ``--help`` and ``--version`` without touching a
server, and every bad setting or unreachable dependency is one line on the
terminal and a non-zero exit, never a traceback. The commands run as
subprocesses, exactly as an operator starts them."""

from __future__ import annotations

import socket
import subprocess
from importlib.metadata import entry_points, version

import pytest

from tests.support.processes import BIN, clean_env, free_port
from tests.support.services import with_database

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

# Every command the workspace installs, from the installed metadata: a new one
# is covered without editing this list.
COMMANDS = sorted(
    ep.name
    for ep in entry_points(group="console_scripts")
    if ep.name.startswith("xdp47")
)
# Where a command would go if it touched a server: nobody listens there, so an
# attempt would show as a failure (or a hang) instead of the help text.
NOWHERE = {
    "XDP47_DB_URL": "postgresql://postgres:pw@127.0.0.1:1/xdp47",
    "XDP47_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
    "XDP47_CONTROL_URL": "http://127.0.0.1:1",
    "XDP47_URL": "http://127.0.0.1:1",
    "XDP47_AGENT_TOKEN": "t",
}


def run(command: str, *args: str, timeout: float = 60, **env: str):
    return subprocess.run(
        [str(BIN / command), *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The whole output, asserted to be a single line without a traceback."""
    output = (done.stdout + done.stderr).strip()
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    return output


def test_every_service_binary_is_covered():
    assert {
        "xdp47-api",
        "xdp47-ingest",
        "xdp47-scheduler",
        "xdp47-migrate",
        "xdp47-admin",
        "xdp47-agent",
        "xdp47-demoapp",
        "xdp47",
    } <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_touches_no_server(command):
    done = run(command, "--help", timeout=30, **NOWHERE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "usage:" in done.stdout.lower()
    assert "--version" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_version_touches_no_server(command):
    done = run(command, "--version", timeout=30, **NOWHERE)
    assert done.returncode == 0, done.stdout + done.stderr
    name, _, number = done.stdout.strip().partition(" ")
    assert name == command
    assert number == version("xdp47-common")  # the workspace versions move together


@pytest.mark.parametrize("command", ["xdp47-api", "xdp47-ingest", "xdp47-scheduler"])
@pytest.mark.parametrize("addr", ["nowhere", "127.0.0.1:notaport", "h:99999"])
def test_a_bad_listen_addr_is_one_line_naming_it(command, addr):
    done = run(command, timeout=30, XDP47_LISTEN_ADDR=addr, **NOWHERE)
    assert done.returncode != 0
    line = one_line(done)
    assert line.startswith(f"{command}: ")
    assert "XDP47_LISTEN_ADDR must be host:port" in line
    assert repr(addr) in line


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        ("xdp47-scheduler", "XDP47_SCHED_HTTP_ADDR"),
        ("xdp47-demoapp", "XDP47_DEMOAPP_ADDR"),
    ],
)
def test_other_listen_addresses_are_checked_the_same_way(command, variable):
    done = run(command, timeout=30, **{**NOWHERE, variable: "nowhere"})
    assert done.returncode != 0
    assert f"{variable} must be host:port" in one_line(done)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"XDP47_SCHED_INTERVAL": "soon"}, "invalid XDP47_SCHED_INTERVAL"),
        ({"XDP47_LOG_LEVEL": "loud"}, "XDP47_LOG_LEVEL must be one of"),
        (
            {"XDP47_DEV_TOKEN_ENABLED": "true"},
            "XDP47_DEV_TOKEN_ENABLED=true is refused",
        ),
    ],
)
@pytest.mark.parametrize("command", ["xdp47-api", "xdp47-ingest", "xdp47-scheduler"])
def test_a_bad_setting_is_one_line(command, env, says):
    done = run(command, timeout=30, **{**NOWHERE, **env})
    assert done.returncode != 0
    assert says in one_line(done)


@pytest.mark.parametrize("command", ["xdp47-api", "xdp47-ingest", "xdp47-scheduler"])
def test_unreachable_postgres_is_one_line_without_the_password(command):
    done = run(command, timeout=60, **NOWHERE)
    assert done.returncode != 0
    line = one_line(done)
    assert "PostgreSQL" in line
    assert "pw" not in line.replace("PostgreSQL", "")


@pytest.mark.parametrize("command", ["xdp47-api", "xdp47-ingest", "xdp47-scheduler"])
def test_unreachable_rabbitmq_is_one_line_without_the_password(command, db_url):
    env = {**NOWHERE, "XDP47_DB_URL": db_url}
    env["XDP47_AMQP_URL"] = f"amqp://guest:s3cr3t@127.0.0.1:{free_port()}/"
    done = run(command, timeout=60, **env)
    assert done.returncode != 0
    line = one_line(done)
    assert "RabbitMQ" in line
    assert "s3cr3t" not in line


@pytest.mark.parametrize("command", ["xdp47-api", "xdp47-ingest"])
def test_a_busy_port_is_one_line(command, db_url, amqp_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(
            command,
            timeout=60,
            XDP47_DB_URL=db_url,
            XDP47_AMQP_URL=amqp_url,
            XDP47_LISTEN_ADDR=f"127.0.0.1:{port}",
        )
    assert done.returncode != 0
    line = one_line(done)
    assert f"cannot listen on XDP47_LISTEN_ADDR 127.0.0.1:{port}: " in line


def test_migrate_against_a_missing_database_is_one_line(server_db_url):
    missing = with_database(server_db_url, "xdp47_no_such_database")
    done = run("xdp47-migrate", XDP47_DB_URL=missing)
    assert done.returncode != 0
    line = one_line(done)
    assert 'database "xdp47_no_such_database" does not exist' in line
    assert "create the database first" in line


@pytest.mark.parametrize(
    "dsn", ["postgresql://postgres:pw@127.0.0.1:1/xdp47", "nowhere", "postgresql://["]
)
def test_migrate_against_an_unreachable_or_malformed_url_is_one_line(dsn):
    done = run("xdp47-migrate", XDP47_DB_URL=dsn)
    assert done.returncode != 0
    line = one_line(done)
    assert line.startswith("xdp47-migrate: ")
    assert ":pw@" not in line


def test_admin_against_an_unreachable_database_is_one_line():
    done = run("xdp47-admin", "create-tenant", "acme", timeout=60, **NOWHERE)
    assert done.returncode == 1
    assert "PostgreSQL at XDP47_DB_URL is unreachable" in one_line(done)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"XDP47_CONTROL_URL": "ftp://x"}, "XDP47_CONTROL_URL must be an http(s) URL"),
        ({"XDP47_AGENT_TOKEN": ""}, None),
        ({"XDP47_DEVICE_LABELS": "site"}, "XDP47_DEVICE_LABELS: label 'site'"),
        (
            {"XDP47_HEARTBEAT_INTERVAL": "often"},
            "XDP47_HEARTBEAT_INTERVAL must be a number, got 'often'",
        ),
        ({"XDP47_LOG_LEVEL": "loud"}, "XDP47_LOG_LEVEL must be one of"),
    ],
)
def test_a_bad_agent_setting_is_one_line(tmp_path, env, says):
    base = {**NOWHERE, "XDP47_STATE_DIR": str(tmp_path)}
    if env.get("XDP47_AGENT_TOKEN") == "":
        base.pop("XDP47_AGENT_TOKEN")
        env = {}
        says = "XDP47_AGENT_TOKEN is required"
    done = run("xdp47-agent", timeout=30, **{**base, **env})
    assert done.returncode == 2
    assert says in one_line(done)
