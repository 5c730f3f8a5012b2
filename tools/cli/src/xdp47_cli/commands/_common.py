"""Options and helpers shared by the resource commands: paging, key=value parsing,
and typing responses with the common models before rendering them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from pydantic import BaseModel, ValidationError

from xdp47_cli.client import ApiClient, Query
from xdp47_cli.errors import CliError, guarded
from xdp47_cli.output import (
    Column,
    OutputFormat,
    OutputOption,
    emit_list,
    emit_record,
    emit_secret_once,
)
from xdp47_cli.resolve import rollout_ref
from xdp47_cli.runtime import runtime
from xdp47_common.selectors import Selector, SelectorError, parse_selector

__all__ = [
    "AllOption",
    "LimitOption",
    "add_get_command",
    "add_ls_command",
    "create_with_secret",
    "fetch_list",
    "list_into",
    "parse_pairs",
    "resolved",
    "selector_option",
    "typed",
]

M = TypeVar("M", bound=BaseModel)

LimitOption = Annotated[
    int,
    typer.Option("--limit", min=1, help="Show at most this many (follows pages)."),
]
AllOption = Annotated[bool, typer.Option("--all", help="Fetch every page.")]


def create_with_secret(
    ctx: typer.Context,
    path: str,
    body: dict[str, object],
    model: type[BaseModel],
    field: str,
    fmt: OutputFormat,
) -> None:
    """POST ``body`` to ``path``, whose answer (a ``model``) carries a secret in
    ``field`` that the API never shows again, and print it (``emit_secret_once``)."""
    with runtime(ctx).client() as client:
        created = client.post(path, body)
    secret = getattr(typed(model, created), field)
    emit_secret_once(created, field, secret, fmt)


def typed(model: type[M], data: Any) -> M:
    """Check an API object against its model; the raw dict is what gets shown."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(
            f"unexpected answer from the API ({model.__name__}.{where}: "
            f"{first['msg']}); is the CLI older than the API?"
        ) from exc


def fetch_list(
    client: ApiClient,
    path: str,
    model: type[BaseModel],
    *,
    limit: int,
    fetch_all: bool,
    params: Query | None = None,
) -> list[dict[str, Any]]:
    """Fetch a list (following pages) and check each item against its model."""
    items = list(client.pages(path, params=params, limit=None if fetch_all else limit))
    for item in items:
        typed(model, item)
    return items


def list_into(
    ctx: typer.Context,
    path: str,
    model: type[BaseModel],
    columns: Sequence[Column],
    fmt: OutputFormat,
    *,
    limit: int,
    fetch_all: bool,
    params: Query | None = None,
) -> list[dict[str, Any]]:
    """Fetch a list (following pages), check each item, render, return it."""
    with runtime(ctx).client() as client:
        items = fetch_list(
            client, path, model, limit=limit, fetch_all=fetch_all, params=params
        )
    emit_list(items, columns, fmt)
    return items


def resolved(ctx: typer.Context, rollout: str) -> UUID:
    """The id of a rollout given by id, name or unique name prefix."""
    with runtime(ctx).client() as client:
        return rollout_ref(client, rollout)


def add_ls_command(
    app: typer.Typer,
    path: str,
    model: type[BaseModel],
    columns: Sequence[Column],
    help_text: str,
) -> None:
    """Register ``ls`` for a resource whose list takes no filters."""

    @app.command("ls", help=help_text)
    @guarded
    def _ls(
        ctx: typer.Context,
        fmt: OutputFormat = OutputOption,
        limit: LimitOption = 100,
        fetch_all: AllOption = False,
    ) -> None:
        list_into(ctx, path, model, columns, fmt, limit=limit, fetch_all=fetch_all)


def add_get_command(
    app: typer.Typer,
    path: str,
    model: type[BaseModel],
    metavar: str,
    resolve: Callable[[ApiClient, str], UUID],
) -> None:
    """Register ``get REF`` showing ``{path}/{id}`` checked against ``model``;
    ``resolve`` turns what the user typed (an id or a name) into the id."""

    def _get(ctx: typer.Context, ref: str, fmt: OutputFormat = OutputOption) -> None:
        with runtime(ctx).client() as client:
            record = client.get(f"{path}/{resolve(client, ref)}")
        typed(model, record)
        emit_record(record, fmt)

    # The metavar is a parameter of this factory, so the annotation is set here
    # rather than written in the signature (a string under PEP 563 that typer
    # would resolve in this module's globals, where ``metavar`` is not).
    _get.__annotations__ = {
        **_get.__annotations__,
        "ctx": typer.Context,
        "ref": Annotated[str, typer.Argument(metavar=metavar)],
        "fmt": OutputFormat,
    }
    app.command("get", help=f"Show one {model.__name__.lower()}.")(guarded(_get))


def parse_pairs(values: Iterable[str], option: str) -> dict[str, str]:
    """``k=v`` items, each maybe a comma-separated list of them: free-form
    metadata, whose values may hold what a label value may not (selectors and
    labels go through ``selector_option``)."""
    out: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            if not sep or not key.strip():
                raise CliError(f"{option}: expected key=value, got {part!r}")
            out[key.strip()] = val.strip()
    return out


def selector_option(values: Iterable[str], option: str) -> Selector:
    """A selector given as repeated options, each ``k=v`` or a comma list."""
    try:
        return parse_selector("\n".join(values))
    except SelectorError as exc:
        raise CliError(f"{option}: {exc}") from None
