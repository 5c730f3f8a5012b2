"""Fixtures of the end-to-end tests: one live stack per test module.

A fresh database migrated by ``xdp47-migrate``, an AMQP namespace of its own
(deleted afterwards), api + ingest + scheduler as processes, and a fleet of six
devices (an ``xdp47-agent`` and an ``xdp47-demoapp`` process each). Every process
is stopped by its pid when the module ends, whatever the tests did; a failing
test's report carries the log tail of every process still running.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fleet import Fleet, start_fleet
from tests.e2e.operator_api import Operator
from tests.support.control_plane import (
    ControlPlane,
    delete_namespace,
    fresh_database,
    start_control_plane,
)
from tests.support.processes import ProcessGroup, log_sections

FLEET_SIZE = 6


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.failed:
        for title, tail in log_sections():
            report.sections.append((title, tail))
    return report


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def e2e_db_url(server_db_url: str, e2e_dir: Path) -> Iterator[str]:
    with fresh_database(server_db_url, e2e_dir / "logs", "xdp47_e2e") as url:
        yield url


@pytest.fixture(scope="module")
def e2e_namespace(amqp_url: str, amqp_namespace: str) -> Iterator[str]:
    namespace = f"{amqp_namespace}_e2e_{uuid.uuid4().hex[:6]}"
    yield namespace
    delete_namespace(amqp_url, namespace)


@pytest.fixture(scope="module")
def e2e_group(
    e2e_dir: Path, e2e_db_url: str, e2e_namespace: str
) -> Iterator[ProcessGroup]:
    """Torn down before the database and the namespace it depends on."""
    with ProcessGroup(e2e_dir / "logs") as group:
        yield group


@pytest.fixture(scope="module")
def e2e_plane_env() -> dict[str, str]:
    """Settings of the module's control plane beyond the defaults: a module
    that needs others (a shorter interval, a store) overrides this fixture."""
    return {}


@pytest.fixture(scope="module")
def e2e_plane(
    e2e_group: ProcessGroup,
    e2e_dir: Path,
    e2e_db_url: str,
    amqp_url: str,
    e2e_namespace: str,
    e2e_plane_env: dict[str, str],
) -> ControlPlane:
    return start_control_plane(
        e2e_group,
        db_url=e2e_db_url,
        amqp_url=amqp_url,
        namespace=e2e_namespace,
        blob_dir=e2e_dir / "blobs",
        extra_env=e2e_plane_env,
    )


@pytest.fixture(scope="module")
def e2e_fleet(e2e_plane: ControlPlane, e2e_group: ProcessGroup, e2e_dir: Path) -> Fleet:
    return start_fleet(
        e2e_plane,
        e2e_group,
        e2e_dir / "devices",
        name=f"f{uuid.uuid4().hex[:6]}",
        size=FLEET_SIZE,
    )


@pytest.fixture
def operator(e2e_plane: ControlPlane) -> Iterator[Operator]:
    op = Operator(e2e_plane)
    yield op
    op.close()
