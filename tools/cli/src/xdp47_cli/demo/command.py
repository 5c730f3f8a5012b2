"""The ``xdp47 demo`` command: options, then :func:`runner.run_demo`.

The service distributions are imported only when the command runs, so the rest
of the CLI stays light; without them (``pip install xdp47-cli`` without the
``demo`` extra) the command says what to install.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from xdp47_cli.errors import CliError, guarded

__all__ = ["demo"]


@guarded
def demo(
    devices: Annotated[
        int,
        typer.Option(
            "--devices",
            min=1,
            max=500,
            envvar="XDP47_DEMO_DEVICES",
            help="Simulated devices (agents with their demo app).",
        ),
    ] = 24,
    demo_dir: Annotated[
        Path,
        typer.Option(
            "--dir",
            envvar="XDP47_DEMO_DIR",
            help="Working folder: PostgreSQL data (embedded mode), device state, "
            "uploaded artifacts and logs.",
        ),
    ] = Path("var/demo"),
    exit_when_done: Annotated[
        bool,
        typer.Option(
            "--exit-when-done",
            help="Exit after the scripted rollouts: 0 only if the good one "
            "completed and the bad one failed.",
        ),
    ] = False,
    keep_running: Annotated[
        bool | None,
        typer.Option(
            "--keep-running/--no-keep-running",
            help="Keep the fleet and the UI up after the script until Ctrl-C "
            "(default: when the terminal is interactive).",
            show_default=False,
        ),
    ] = None,
    api_port: Annotated[
        int | None,
        typer.Option(
            "--api-port", envvar="XDP47_DEMO_API_PORT", help="API port (default free)."
        ),
    ] = None,
    ingest_port: Annotated[
        int | None,
        typer.Option(
            "--ingest-port",
            envvar="XDP47_DEMO_INGEST_PORT",
            help="Ingest port (default free).",
        ),
    ] = None,
    heartbeat: Annotated[
        float,
        typer.Option("--heartbeat", min=0.2, help="Device heartbeat interval, s."),
    ] = 1.0,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=5, help="Longest wait for each rollout, s."),
    ] = 180.0,
) -> None:
    """Run a control plane, a simulated fleet, and two rollouts to watch.

    With XDP47_DB_URL and XDP47_AMQP_URL set, api, ingest and scheduler run as
    processes against them; otherwise PostgreSQL comes from the pgserver wheel
    and the three services run in this process over the in-memory bus.
    """
    try:
        from xdp47_cli.demo.runner import DemoOptions, run_demo
    except ImportError as exc:
        raise CliError(
            f"xdp47 demo needs the service packages ({exc.name} is missing): "
            "install xdp47-cli[demo]"
        ) from exc
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    options = DemoOptions(
        devices=devices,
        demo_dir=demo_dir.resolve(),
        exit_when_done=exit_when_done,
        keep_running=interactive if keep_running is None else keep_running,
        api_port=api_port,
        ingest_port=ingest_port,
        heartbeat=heartbeat,
        timeout=timeout,
    )
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    code = asyncio.run(run_demo(options, out, err))
    raise typer.Exit(code)
