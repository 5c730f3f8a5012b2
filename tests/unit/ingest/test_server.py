"""``XDP47_INGEST_SERVER``: uvicorn by default, granian on request, anything else
refused; either server ends the process with uvicorn's status when the app
cannot start, never 0."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.processes import free_port
from xdp47_common import tracing
from xdp47_common.cli import settings_problem
from xdp47_ingest import create_app
from xdp47_ingest.device_lane import DeviceLane
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


def _lane(**settings: Any) -> object:
    app = create_app(
        IngestSettings(
            db_url="postgresql://x@127.0.0.1:1/x",
            amqp_url="amqp://guest:guest@127.0.0.1:1/",
            **settings,
        )
    )
    return getattr(app.state, "device_lane", None)


def test_the_device_lane_is_on_by_default_and_off_where_it_cannot_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Off by setting, with device limits in a shared storage (counting is a
    round trip) and with tracing on (the ASGI path opens the request's span)."""
    assert isinstance(_lane(), DeviceLane)
    assert _lane(ingest_fast_lane=False) is None
    assert _lane(rate_limit_storage="redis://127.0.0.1:1/0") is None
    # No device limit: nothing to count, the lane serves whatever the storage.
    assert isinstance(
        _lane(rate_limit_storage="redis://127.0.0.1:1/0", device_rate_limit="off"),
        DeviceLane,
    )
    monkeypatch.setattr(tracing, "_provider", object())
    assert _lane() is None
