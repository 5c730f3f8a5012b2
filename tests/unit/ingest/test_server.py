"""``XDP47_INGEST_SERVER``: uvicorn by default, granian on request, anything else
refused; either server ends the process with uvicorn's status when the app
cannot start, never 0."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.processes import free_port
from xdp47_common.cli import settings_problem
from xdp47_ingest.server import APP_FAILED, serve
from xdp47_ingest.settings import IngestSettings


def test_uvicorn_is_the_default_and_granian_the_alternative() -> None:
    assert IngestSettings().ingest_server == "uvicorn"
    assert IngestSettings(ingest_server="granian").ingest_server == "granian"


def test_another_server_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDP47_INGEST_SERVER", "hypercorn")
    with pytest.raises(ValidationError) as caught:
        IngestSettings()
    problem = settings_problem(caught.value)
    assert problem.startswith("invalid XDP47_INGEST_SERVER: ")
    assert "'uvicorn' or 'granian'" in problem


async def _failing_lifespan(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_an_app_that_cannot_start_ends_the_process_non_zero(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(SystemExit) as ended:
        serve(_failing_lifespan, server, "127.0.0.1", free_port())  # type: ignore[arg-type]
    assert ended.value.code == APP_FAILED
    assert "no database" in caplog.text
