"""The agent's Debian package (docs/agent.md#debian-package), built with
``scripts/build-agent-deb`` (``dpkg-deb``) and installed into a throwaway root
with ``dpkg-deb -x``: never into this machine's dpkg database or systemd.

The installed entry point runs with the variables of the installed
``/etc/xdp47/agent.env`` (filled in as an operator would) against a real api,
ingest and scheduler, under ``/usr/bin/python3`` with only what the package
carries: it claims, heartbeats, and installs a signed artifact through its
installer child (PyNaCl from ``/usr/lib/xdp47-agent``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.delivery.support import ROOT
from tests.e2e.operator_api import Operator
from tests.support.control_plane import (
    ControlPlane,
    delete_namespace,
    fresh_database,
    start_control_plane,
)
from tests.support.processes import ProcessGroup, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("dpkg-deb") is None or not Path("/usr/bin/python3").exists(),
        reason="needs dpkg-deb and a Debian python3",
    ),
]

SYSTEM_PYTHON = Path("/usr/bin/python3")
LIB = "usr/lib/xdp47-agent"


def _run(*cmd: str | Path, **kwargs: object) -> str:
    done = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return str(done.stdout)


def _minor(python: Path | str) -> str:
    return _run(
        python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"
    ).strip()


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _minor(SYSTEM_PYTHON) != _minor(sys.executable):
        pytest.skip("/usr/bin/python3 is not the minor version the package is for")
    out = tmp_path_factory.mktemp("deb")
    path = Path(_run(sys.executable, ROOT / "scripts" / "build-agent-deb", out).strip())
    assert path.parent == out
    return path


@pytest.fixture(scope="module")
def installed(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    _run("dpkg-deb", "-x", deb, root)
    return root


def _fields(deb: Path) -> dict[str, str]:
    text = _run("dpkg-deb", "-f", deb)
    fields = (line.partition(":") for line in text.splitlines())
    return {k: v.strip() for k, sep, v in fields if sep and not k.startswith(" ")}


def test_the_package_declares_what_it_is(deb: Path, tmp_path: Path):
    fields = _fields(deb)
    assert fields["Package"] == "xdp47-agent"
    assert fields["Architecture"] == _run("dpkg", "--print-architecture").strip()
    minor = _minor(sys.executable)
    major, low = minor.split(".")
    assert fields["Depends"] == (
        f"python3 (>= {minor}), python3 (<< {major}.{int(low) + 1})"
    )
    control = tmp_path / "DEBIAN"
    _run("dpkg-deb", "-e", deb, control)
    assert (control / "conffiles").read_text() == "/etc/xdp47/agent.env\n"
    assert os.access(control / "postinst", os.X_OK)
    listing = _run("dpkg-deb", "-c", deb)
    for path in (
        "./usr/bin/xdp47-agent",
        "./usr/lib/systemd/system/xdp47-agent.service",
        "./usr/lib/sysusers.d/xdp47-agent.conf",
        "./etc/xdp47/agent.env",
        f"./{LIB}/xdp47_agent/main.py",
        f"./{LIB}/nacl/signing.py",
        f"./{LIB}/packaging/version.py",
    ):
        assert f" {path}\n" in listing + "\n", path
    assert "-rw------- root/root" in next(
        line for line in listing.splitlines() if line.endswith("./etc/xdp47/agent.env")
    )
    assert "/.lock" not in listing
    assert f"./{LIB}/bin/" not in listing


def test_the_unit_runs_the_entry_point_with_the_config_file(installed: Path):
    unit = (installed / "usr/lib/systemd/system/xdp47-agent.service").read_text()
    assert "ExecStart=/usr/bin/xdp47-agent\n" in unit
    assert "EnvironmentFile=-/etc/xdp47/agent.env\n" in unit
    assert "StateDirectory=xdp47\n" in unit
    assert "Type=notify\n" in unit
    env = _env_file(installed / "etc/xdp47/agent.env")
    assert env["XDP47_STATE_DIR"] == "/var/lib/xdp47"
    assert (
        (installed / "usr/bin/xdp47-agent")
        .read_text()
        .startswith("#!/usr/bin/python3\n")
    )


def test_dependencies_come_from_the_package(installed: Path):
    """Without site-packages (``-S``), everything the agent imports, PyNaCl
    included, is found in /usr/lib/xdp47-agent."""
    lib = installed / LIB
    where = _run(
        SYSTEM_PYTHON,
        "-S",
        "-c",
        f"import sys; sys.path.insert(0, {str(lib)!r});"
        "import nacl.signing, packaging.version;"
        "import xdp47_agent.main, xdp47_agent.installer;"
        "print(nacl.__file__, packaging.__file__, xdp47_agent.main.__file__)",
    ).split()
    assert all(path.startswith(str(lib)) for path in where), where
    version = _run(installed / "usr/bin/xdp47-agent", "--version", env=_bare_env())
    assert version.strip() == "xdp47-agent 0.1.0"


def _bare_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines as systemd's EnvironmentFile reads them."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _configure(path: Path, values: dict[str, str]) -> None:
    """Set ``values`` in the installed config file, as an operator edits it."""
    lines = path.read_text().splitlines()
    done: set[str] = set()
    for i, line in enumerate(lines):
        key = line.lstrip("#").partition("=")[0]
        if key in values and "=" in line:
            lines[i] = f"{key}={values[key]}"
            done.add(key)
    lines += [f"{k}={v}" for k, v in values.items() if k not in done]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def plane(
    tmp_path_factory: pytest.TempPathFactory,
    server_db_url: str,
    amqp_url: str,
    amqp_namespace: str,
) -> Iterator[ControlPlane]:
    work = tmp_path_factory.mktemp("plane")
    namespace = f"{amqp_namespace}_deb_{uuid.uuid4().hex[:6]}"
    try:
        with (
            fresh_database(server_db_url, work / "logs", "xdp47_deb") as db_url,
            ProcessGroup(work / "logs") as group,
        ):
            yield start_control_plane(
                group,
                db_url=db_url,
                amqp_url=amqp_url,
                namespace=namespace,
                blob_dir=work / "blobs",
            )
    finally:
        delete_namespace(amqp_url, namespace)


def test_the_installed_agent_claims_heartbeats_and_installs(
    installed: Path, plane: ControlPlane, tmp_path: Path
):
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device_id = f"deb-{uuid.uuid4().hex[:10]}"
    site = f"deb{uuid.uuid4().hex[:6]}"
    config = installed / "etc/xdp47/agent.env"
    # The unit's StateDirectory, inside the throwaway root.
    state_dir = installed / "var/lib/xdp47"
    _configure(
        config,
        {
            "XDP47_CONTROL_URL": plane.api_url,
            "XDP47_AGENT_TOKEN": plane.token,
            "XDP47_TENANT": plane.tenant,
            "XDP47_DEVICE_ID": device_id,
            "XDP47_DEVICE_LABELS": f"site={site}",
            "XDP47_VERIFY_KEYS": base64.b64encode(public).decode(),
            "XDP47_STATE_DIR": str(state_dir),
            "XDP47_HEARTBEAT_INTERVAL": "0.5",
        },
    )
    env = _bare_env() | _env_file(config)
    log = tmp_path / "agent.log"
    with log.open("ab") as out:
        agent = subprocess.Popen(
            [installed / "usr/bin/xdp47-agent"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    operator = Operator(plane)
    try:

        def heartbeating() -> None:
            assert agent.poll() is None, log.read_text()
            response = operator.http.get(f"/api/devices/{device_id}")
            assert response.status_code == 200, response.text
            assert response.json()["recent_heartbeats"], response.text

        wait_until(heartbeating, within=60)
        content = os.urandom(64 * 1024)
        signature = key.sign(hashlib.sha256(content).digest())
        artifact = operator._ok(
            operator.http.post(
                "/api/artifacts/upload",
                params={
                    "tenant": plane.tenant,
                    "version": "2.0.0",
                    "signature": base64.b64encode(signature).decode(),
                },
                content=content,
                headers={"Content-Type": "application/octet-stream"},
            ),
            201,
        )
        rollout = operator.rollout(artifact["id"], {"site": site}, waves=1)
        operator.start(rollout["id"])
        operator.wait_status(rollout["id"], "completed", within=90)
        assert (state_dir / "applied_version").read_text() == "2.0.0"
        assert (state_dir / f"applied_{artifact['id']}").read_bytes() == content
        device = operator.http.get(f"/api/devices/{device_id}").json()
        assert device["last_apply"]["result"] == "ok"
    finally:
        operator.close()
        agent.terminate()
        code = agent.wait(30)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
