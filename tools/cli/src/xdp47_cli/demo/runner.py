"""``xdp47 demo`` end to end: control plane, fleet, script, and a clean stop.

Picks the mode (external when ``XDP47_DB_URL`` and ``XDP47_AMQP_URL`` are both
set, embedded otherwise), starts the control plane, mints the tokens, starts the
fleet, runs the good, the subtly bad (under a telemetry analysis) and the bad
rollout, then either exits (``exit_when_done``)
or keeps the fleet and the UI up until Ctrl-C. SIGINT / SIGTERM at any point stop
the fleet first, then the services and PostgreSQL, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.markup import escape

from xdp47_cli.client import ApiClient
from xdp47_cli.demo.control import ControlPlane, DemoError, service_env
from xdp47_cli.demo.fleet import Fleet
from xdp47_cli.demo.scenario import (
    BAD_VERSION,
    GOOD_VERSION,
    SUBTLE_VERSION,
    Interrupted,
    Outcome,
    Scenario,
)
from xdp47_cli.errors import CliError
from xdp47_common.logging import configure_logging
from xdp47_common.rollout.status import RolloutStatus

__all__ = ["DemoOptions", "external_mode", "run_demo"]

T = TypeVar("T")
EXPECTED = {
    GOOD_VERSION: RolloutStatus.COMPLETED,
    SUBTLE_VERSION: RolloutStatus.FAILED,
    BAD_VERSION: RolloutStatus.FAILED,
}
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class DemoOptions:
    devices: int
    demo_dir: Path
    exit_when_done: bool
    keep_running: bool
    api_port: int | None
    ingest_port: int | None
    heartbeat: float
    timeout: float


def external_mode() -> bool:
    return bool(os.environ.get("XDP47_DB_URL") and os.environ.get("XDP47_AMQP_URL"))


def _plane(options: DemoOptions, env: dict[str, str]) -> ControlPlane:
    if external_mode():
        from xdp47_cli.demo.external import ExternalControlPlane

        return ExternalControlPlane(
            options.demo_dir,
            env,
            api_port=options.api_port,
            ingest_port=options.ingest_port,
        )
    from xdp47_cli.demo.embedded import EmbeddedControlPlane

    return EmbeddedControlPlane(
        options.demo_dir,
        env,
        api_port=options.api_port,
        ingest_port=options.ingest_port,
    )


class _Run:
    def __init__(self, options: DemoOptions, out: Console, err: Console) -> None:
        self.options = options
        self.out = out
        self.err = err
        self.stop = asyncio.Event()
        self.thread_stop = threading.Event()

    def interrupt(self) -> None:
        self.stop.set()
        self.thread_stop.set()

    async def until_stopped(self, work: Awaitable[T]) -> T:
        """``work``'s result, or ``Interrupted`` once Ctrl-C came first."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not task.done():
            # A thread cannot be cancelled: it sees thread_stop and ends soon.
            task.cancel()
            await asyncio.wait({task}, timeout=35)
            raise Interrupted
        return task.result()

    async def in_thread(self, func: Callable[..., T], *args: object) -> T:
        return await self.until_stopped(asyncio.to_thread(func, *args))


async def run_demo(options: DemoOptions, out: Console, err: Console) -> int:
    """Run the demo; returns the process exit code."""
    run = _Run(options, out, err)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, run.interrupt)
    options.demo_dir.mkdir(parents=True, exist_ok=True)
    (options.demo_dir / "logs").mkdir(exist_ok=True)
    log_path = options.demo_dir / "logs" / "demo.log"
    # Left open for the life of the process: late log lines still have a home.
    log_file = log_path.open("a")
    configure_logging("demo", json=True, stream=log_file)
    if True:
        tenant = f"demo-{secrets.token_hex(3)}"
        dev_token = f"demo-dev-{secrets.token_urlsafe(18)}"
        plane = _plane(
            options,
            service_env(tenant=tenant, dev_token=dev_token, demo_dir=options.demo_dir),
        )
        out.print(f"[bold]xdp47 demo[/] — {escape(plane.describe())}")
        out.print(f"tenant {tenant}; logs in {options.demo_dir / 'logs'}")
        fleet: Fleet | None = None
        client: ApiClient | None = None
        try:
            endpoints = await run.until_stopped(plane.start())
            client = ApiClient(endpoints.api_url, dev_token)
            scenario = Scenario(client, tenant, out=out, err=err, stop=run.thread_stop)
            prepared = await run.in_thread(scenario.prepare)
            out.print(
                f"\nUI:    [bold]{endpoints.api_url}/ui[/]  (API docs: "
                f"{endpoints.api_url}/docs)\n"
                f"token: [bold]{prepared.operator_token}[/]  (all scopes, tenant "
                f"{tenant}; sign in to the UI with it)\n",
                highlight=False,
                soft_wrap=True,
            )
            if not options.keep_running and not options.exit_when_done:
                # Not on a terminal: say now, while the address is fresh, that
                # it will not stay up, and how to make it.
                out.print(
                    "not on a terminal: the demo stops once its script is done; "
                    "run it with --keep-running to keep the fleet and the UI up "
                    "until Ctrl-C",
                    highlight=False,
                )
            fleet = Fleet(
                devices=options.devices,
                tenant=tenant,
                control_url=endpoints.api_url,
                ingest_url=endpoints.ingest_url,
                claim_token=prepared.claim_token,
                state_root=options.demo_dir / "fleet" / tenant,
                heartbeat_interval=options.heartbeat,
            )
            fleet.start()
            out.print(f"fleet: starting {options.devices} devices (agent + demo app)")
            await run.in_thread(scenario.wait_for_fleet, options.devices, 60.0)
            results: dict[str, Outcome] = {}
            # The subtly bad release before the bad one: devices that a failed
            # rollout leaves on the bad release would be in its baseline.
            for version in (GOOD_VERSION, SUBTLE_VERSION, BAD_VERSION):
                results[version] = await run.in_thread(
                    partial(
                        scenario.rollout,
                        version,
                        prepared,
                        options.timeout,
                        analysed=version == SUBTLE_VERSION,
                    )
                )
            code = _report(results, out, err)
            if options.keep_running and not options.exit_when_done:
                out.print(
                    f"\nthe fleet and the UI ({endpoints.api_url}/ui) stay up; "
                    "Ctrl-C stops everything"
                )
                await run.stop.wait()
                # Ctrl-C is how this phase ends, and exits 130 like anywhere else.
                raise Interrupted
            if not options.exit_when_done:
                out.print("script done; stopping (--keep-running keeps it up)")
            return code
        except Interrupted:
            err.print("interrupted: stopping the fleet and the services")
            return EXIT_INTERRUPTED
        except (DemoError, CliError) as exc:
            message = exc.message if isinstance(exc, CliError) else str(exc)
            err.print(f"[bold red]demo failed:[/] {escape(message)}")
            return 1
        finally:
            if client is not None:
                client.close()
            if fleet is not None:
                await fleet.stop()
            await plane.stop()
            out.print("demo stopped: fleet, services and database are down")


def _subtle_line(outcome: Outcome) -> str:
    """What happened to the subtly bad release, with the analysis's numbers."""
    reason = outcome.reason or ""
    if outcome.status is RolloutStatus.FAILED and "analysis failed" in reason:
        return (
            f"subtly bad release {SUBTLE_VERSION} stopped by the analysis in wave "
            f"{outcome.wave} although require_ok alone would pass it ({reason})"
        )
    return f"subtly bad release {SUBTLE_VERSION} {outcome.status.value} ({reason})"


def _report(results: dict[str, Outcome], out: Console, err: Console) -> int:
    wrong = [
        f"the {v} rollout ended '{results[v].status.value}', expected "
        f"'{EXPECTED[v].value}'"
        for v in EXPECTED
        if results[v].status is not EXPECTED[v]
    ]
    subtle = results[SUBTLE_VERSION]
    if subtle.status is RolloutStatus.FAILED and (
        "analysis failed" not in (subtle.reason or "") or subtle.wave != 1
    ):
        wrong.append(
            f"the {SUBTLE_VERSION} rollout was not stopped by the analysis in "
            f"wave 1: {subtle.reason}"
        )
    out.print(
        f"\nresult: good release {GOOD_VERSION} {results[GOOD_VERSION].status.value}, "
        f"bad release {BAD_VERSION} {results[BAD_VERSION].status.value}, "
        f"{_subtle_line(subtle)}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if wrong:
        err.print(f"[bold red]unexpected:[/] {escape('; '.join(wrong))}")
        return 1
    return 0
