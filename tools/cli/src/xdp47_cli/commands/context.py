"""``xdp47 login`` and ``xdp47 context ls|use|show|rm``: the stored contexts.

Login checks the token against the API (401 is refused; 403 means the token is
real but lacks a read scope) and, unless ``--tenant`` is given, learns the tenant
from the token list or the tenant list so that create commands can fill in the
``tenant`` field of their bodies.
"""

from __future__ import annotations

from typing import Annotated

import typer

from xdp47_cli.client import ApiClient
from xdp47_cli.config import (
    Config,
    Context,
    config_path,
    load_config,
    mask,
    save_config,
)
from xdp47_cli.errors import ApiError, CliError, guarded
from xdp47_cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    emit_list,
    emit_record,
    emit_value,
)
from xdp47_cli.runtime import runtime

__all__ = ["app", "detect_tenant", "login"]

app = typer.Typer(
    help="Stored API contexts (URL, token, tenant).", no_args_is_help=True
)


def detect_tenant(client: ApiClient) -> str | None:
    """The token's tenant, when the API lets this token tell; 401 raises."""
    for path in ("/api/tokens", "/api/tenants"):
        try:
            items = client.get(path, params={"limit": 2})
        except ApiError as exc:
            if exc.status == 403:
                continue
            raise
        if path == "/api/tokens" and items:
            return str(items[0]["tenant"])
        if path == "/api/tenants" and len(items) == 1:
            return str(items[0]["id"])
    return None


@guarded
def login(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", help="API base URL.")],
    token: Annotated[str, typer.Option("--token", help="API token (xdp47t_…).")],
    name: Annotated[str, typer.Option("--name", help="Context name.")] = "default",
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant; detected when omitted.")
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Check the token against the API first.")
    ] = True,
) -> None:
    """Store a context (URL + token) and make it the current one."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url: expected an http:// or https:// URL, got {url!r}")
    if verify:
        with ApiClient(url, token, transport=runtime(ctx).transport) as client:
            tenant = tenant or detect_tenant(client)
    config = load_config()
    config.contexts[name] = Context(url=url, token=token, tenant=tenant)
    config.current = name
    path = save_config(config)
    emit_value(f"logged in to {url} as context '{name}' (tenant {tenant or 'unknown'})")
    if tenant is None:
        emit_value("the tenant is unknown: pass --tenant to commands that create")
    emit_value(f"saved to {path}")


def _rows(config: Config) -> list[dict[str, str | bool | None]]:
    return [
        {
            "name": name,
            "current": name == config.current,
            "url": c.url,
            "tenant": c.tenant,
            "token": mask(c.token),
        }
        for name, c in sorted(config.contexts.items())
    ]


@app.command("ls")
@guarded
def list_contexts(fmt: OutputFormat = OutputOption) -> None:
    """List the stored contexts (tokens masked)."""
    emit_list(
        _rows(load_config()),
        [
            Column("", lambda r: "*" if r["current"] else ""),
            Column("name", lambda r: r["name"]),
            Column("url", lambda r: r["url"]),
            Column("tenant", lambda r: r["tenant"]),
            Column("token", lambda r: r["token"]),
        ],
        fmt,
    )


@app.command("use")
@guarded
def use_context(name: str) -> None:
    """Make NAME the current context."""
    config = load_config()
    if name not in config.contexts:
        raise CliError(f"no context named '{name}'; see `xdp47 context ls`")
    config.current = name
    save_config(config)
    emit_value(f"current context: {name}")


@app.command("show")
@guarded
def show_context(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Default: current.")] = None,
    fmt: OutputFormat = OutputOption,
) -> None:
    """Show a context as the CLI would use it (token masked)."""
    rt = runtime(ctx)
    config = load_config()
    chosen = name or rt.context or config.current
    stored = config.contexts.get(chosen) if chosen else None
    if name is not None and stored is None:
        raise CliError(f"no context named '{name}'; see `xdp47 context ls`")
    # Without an explicit NAME, show the effective values, overrides included.
    url = (None if name else rt.url) or (stored.url if stored else None)
    token = (None if name else rt.token) or (stored.token if stored else None)
    tenant = (None if name else rt.tenant) or (stored.tenant if stored else None)
    emit_record(
        {
            "context": chosen,
            "url": url,
            "tenant": tenant,
            "token": mask(token) if token else None,
            "config": str(config_path()),
        },
        fmt,
    )


@app.command("rm")
@guarded
def remove_context(name: str) -> None:
    """Forget the context NAME."""
    config = load_config()
    if config.contexts.pop(name, None) is None:
        raise CliError(f"no context named '{name}'; see `xdp47 context ls`")
    if config.current == name:
        config.current = None
    save_config(config)
    emit_value(f"removed context: {name}")
