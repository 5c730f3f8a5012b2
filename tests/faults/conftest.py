"""Fixtures of the fault suite: a RabbitMQ node and a PostgreSQL cluster of its own
(killed and restarted by the scenarios, never the machine's shared ones), the
undisturbed run the faulty ones are compared with, and the figure lines.

Every scenario records one ``FAULT <name>: ...`` line with ``figure``; the lines
are printed at the end of the run (and with ``-s`` as they happen) and are what
``docs/reliability.md`` quotes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import (
    Outcome,
    drive_rollout,
    figure,
    new_fleet,
    open_stack,
)
from tests.support.brokers import OwnPostgres, OwnRabbit
from tests.support.processes import log_sections


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.failed:
        for title, tail in log_sections():
            report.sections.append((title, tail))
    return report


@pytest.fixture(scope="package")
def own_rabbit() -> Iterator[OwnRabbit]:
    with OwnRabbit() as rabbit:
        yield rabbit


@pytest.fixture(scope="package")
def own_pg() -> Iterator[OwnPostgres]:
    with OwnPostgres() as pg:
        yield pg


@pytest.fixture(scope="package")
async def undisturbed(
    own_pg: OwnPostgres,
    own_rabbit: OwnRabbit,
    tmp_path_factory: pytest.TempPathFactory,
) -> Outcome:
    """The rollout of the standard setup with no fault: the reference outcome."""
    root: Path = tmp_path_factory.mktemp("undisturbed")
    with open_stack(own_pg, own_rabbit, root) as stack:
        fleet = new_fleet(stack)
        try:
            outcome = await drive_rollout(stack, fleet)
        finally:
            await fleet.close()
    figure(
        f"FAULT none (undisturbed): accepted={outcome.accepted} "
        f"persisted={outcome.persisted} missing={outcome.missing} "
        f"double_assign={outcome.double_assign} terminal={outcome.status} "
        f"state={outcome.digest}"
    )
    return outcome
