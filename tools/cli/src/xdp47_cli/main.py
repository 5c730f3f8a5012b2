"""The ``xdp47`` entry point: global options and the command groups.

Commands that talk to the API build their client lazily from the
:class:`~xdp47_cli.runtime.Runtime` this callback leaves on the context, so
commands that need no API (``login``, ``context``, and ``demo``, which starts its
own) work without one. ``xdp47 demo`` lives in its own module and registers
itself here with ``app.command("demo")``.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from xdp47_cli.commands import (
    artifacts,
    audit,
    completion,
    context,
    devices,
    groups,
    policies,
    rollouts,
    tenants,
    tokens,
)
from xdp47_cli.demo import demo
from xdp47_cli.runtime import Runtime

__all__ = ["app"]

app = typer.Typer(
    name="xdp47",
    help="Operate XDP47: tenants, tokens, devices, artifacts, policies and rollouts.",
    no_args_is_help=True,
    # --install-completion / --show-completion for the detected shell;
    # `xdp47 completion SHELL` names it.
    add_completion=True,
    # Plain help: flags without a `<bool>` type, option names never cut.
    rich_markup_mode=None,
    # An API error is one line (see errors.guarded); a traceback means a bug.
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"xdp47 {version('xdp47-cli')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", envvar="XDP47_URL", help="API base URL.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="XDP47_TOKEN", help="API token.", show_default=False
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", envvar="XDP47_TENANT", help="Tenant for create bodies."
        ),
    ] = None,
    context_name: Annotated[
        str | None,
        typer.Option(
            "--context", envvar="XDP47_CONTEXT", help="Stored context to use."
        ),
    ] = None,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Global options override the stored context."""
    # Tests pass a Runtime (with a fake transport and clock) as the click obj.
    rt = ctx.obj if isinstance(ctx.obj, Runtime) else Runtime()
    rt.url = url or rt.url
    rt.token = token or rt.token
    rt.tenant = tenant or rt.tenant
    rt.context = context_name or rt.context
    ctx.obj = rt


app.command("login")(context.login)
app.add_typer(context.app, name="context")
app.add_typer(tenants.app, name="tenants")
app.add_typer(tokens.app, name="tokens")
app.add_typer(devices.app, name="devices")
app.add_typer(groups.app, name="groups")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(policies.app, name="policies")
app.add_typer(rollouts.app, name="rollouts")
app.command("audit")(audit.audit)
app.command("demo")(demo)
app.command("completion")(completion.completion)


def _plain_help(typer_app: typer.Typer) -> None:
    """Every group (also ones added later) prints the same plain help."""
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            group.typer_instance.rich_markup_mode = None
            _plain_help(group.typer_instance)


_plain_help(app)
