"""The api image, built for real and run under a read-only root filesystem.

``scripts/build-images api`` builds ``services/api/Dockerfile`` with podman (vfs
storage, no daemon, no registry: stand-in bases from debootstrap). The container
answers ``xdp47-api --help`` with no network; then it runs as the chart runs it:
read-only root, uid 10001, writable only ``/tmp`` (a tmpfs) and ``/var/lib/xdp47``
(the image's volume). It must answer ``/livez``, and ``/readyz`` with the
artifact store's probe ``ok``: the blob dir it defaults to is writable. Without
a database its entrypoint says so in one line.

Building takes minutes (debootstrap once, then the image), so the test runs when
``XDP47_TEST_IMAGES=1``; ``tests/delivery/test_dockerfiles.py`` checks the
Dockerfiles statically on every run.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.delivery.support import ROOT
from tests.support.control_plane import delete_namespace
from tests.support.processes import free_port, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        os.environ.get("XDP47_TEST_IMAGES") != "1",
        reason="builds images for minutes: set XDP47_TEST_IMAGES=1",
    ),
]

SCRIPT = ROOT / "scripts" / "build-images"
IMAGE = "localhost/xdp47-api:dev"


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def api_image() -> str:
    built = subprocess.run(
        [str(SCRIPT), "api"], capture_output=True, text=True, timeout=1700, check=False
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return IMAGE


def _run_args(name: str) -> list[str]:
    return [
        "run",
        "--rm",
        "--name",
        name,
        "--read-only",
        "--user",
        "10001:10001",
        "--tmpfs",
        "/tmp:rw,size=64m",
        # /var/lib/xdp47 is the image's VOLUME: an anonymous volume, owned by
        # uid 10001 as the image made the directory (the chart mounts volumes
        # there). A tmpfs would not do here: podman 4.3 mounts it root-owned
        # 0755 whatever mode= says.
    ]


@pytest.fixture
def running_api(
    api_image: str, db_url: str, amqp_url: str, amqp_namespace: str
) -> Iterator[str]:
    port = free_port()
    name = f"xdp47-test-api-{uuid.uuid4().hex[:8]}"
    env = {
        "XDP47_DB_URL": db_url,
        "XDP47_AMQP_URL": amqp_url,
        "XDP47_AMQP_NAMESPACE": f"{amqp_namespace}_img",
        "XDP47_LISTEN_ADDR": f"127.0.0.1:{port}",
    }
    flags = [f"--env={k}={v}" for k, v in env.items()]
    started = podman(*_run_args(name), "--detach", *flags, api_image)
    assert started.returncode == 0, started.stderr
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        podman("rm", "--force", "--time", "5", name)
        delete_namespace(amqp_url, f"{amqp_namespace}_img")


def test_the_api_serves_under_a_read_only_root(running_api: str) -> None:
    def ready() -> None:
        r = httpx.get(f"{running_api}/readyz", timeout=3)
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["artifacts"] == "ok"

    wait_until(ready, within=90, every=1)
    assert httpx.get(f"{running_api}/livez", timeout=3).json()["status"] == "ok"


def test_the_entrypoint_answers_help_offline(api_image: str) -> None:
    name = f"xdp47-test-api-{uuid.uuid4().hex[:8]}"
    # No database, no broker, no network: --help must still answer.
    ran = podman(*_run_args(name), "--network=none", api_image, "--help", timeout=120)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    assert "xdp47-api" in ran.stdout
    assert "XDP47_" in ran.stdout


def test_the_entrypoint_names_a_missing_database(api_image: str) -> None:
    name = f"xdp47-test-api-{uuid.uuid4().hex[:8]}"
    ran = podman(
        *_run_args(name),
        "--env=XDP47_DB_URL=postgresql://nobody@127.0.0.1:1/none",
        api_image,
        timeout=120,
    )
    assert ran.returncode == 1, (ran.stdout, ran.stderr)
    assert "PostgreSQL at XDP47_DB_URL is unreachable" in ran.stdout + ran.stderr
