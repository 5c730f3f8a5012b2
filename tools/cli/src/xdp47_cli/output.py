"""Rendering: tables for people, JSON or YAML (the API's own objects) for programs.

``-o json`` prints exactly what the API answered (a list command prints one JSON
array of every item it fetched), so scripts can rely on the API's field names;
``-o yaml`` is the same data as YAML. ``-o table`` (the default) shows the usual
columns, ``-o wide`` adds the ones that make rows long (ids behind names, full
digests).

On a terminal tables are drawn by rich, fitted to its width. Anywhere else (a
pipe, a file, CI) they are plain text: the columns aligned on their content,
separated by two spaces, one row per line, no cell ever folded or cut and no
trailing padding, so ``grep``, ``cut`` and ``column`` see whole values.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "Column",
    "OutputFormat",
    "OutputOption",
    "cell",
    "console",
    "emit_data",
    "emit_json",
    "emit_list",
    "emit_record",
    "emit_secret_once",
    "emit_table",
    "emit_value",
    "get",
    "plain_table",
]


class OutputFormat(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"

    @property
    def machine(self) -> bool:
        """json or yaml: the API's objects, not a table."""
        return self in (OutputFormat.JSON, OutputFormat.YAML)


OutputOption = typer.Option(
    OutputFormat.TABLE,
    "--output",
    "-o",
    help="table or wide (more columns) for people; json or yaml for programs.",
)


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[Mapping[str, Any]], Any]
    only: OutputFormat | None = None  # shown only in this format (table or wide)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def console() -> Console:
    """stdout for people; outside a terminal never wrapped to a width."""
    if is_terminal():
        return Console(highlight=False)
    return Console(highlight=False, soft_wrap=True, no_color=True)


def cell(value: Any) -> str:
    """A value as a table cell: '-' for missing, k=v pairs for mappings."""
    if value is None or value == "" or value == {} or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def emit_data(data: Any, fmt: OutputFormat) -> None:
    """The API's objects as JSON, or as YAML (block style, keys in API order)."""
    if fmt is OutputFormat.YAML:
        import yaml  # here: only -o yaml pays for the import (every call starts anew)

        typer.echo(
            yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")
        )
    else:
        emit_json(data)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned on their content, two spaces apart, one line per row."""
    flat = [[" ".join(c.split()) or "-" for c in row] for row in rows]
    widths = [
        max([len(h), *(len(row[i]) for row in flat)]) for i, h in enumerate(headers)
    ]
    lines = [headers, *flat]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table of text cells: rich on a terminal, plain elsewhere."""
    if not is_terminal():
        typer.echo(plain_table(headers, rows))
        return
    table = Table(show_edge=False, box=None, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(c) for c in row))
    console().print(table)


def emit_list(
    items: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    fmt: OutputFormat,
) -> None:
    rows = list(items)
    if fmt.machine:
        emit_data(rows, fmt)
        return
    if not rows:
        typer.echo("(none)")
        return
    shown = [c for c in columns if c.only in (None, fmt)]
    emit_table(
        [c.header.upper() for c in shown],
        [[cell(c.get(row)) for c in shown] for row in rows],
    )


def emit_record(item: Mapping[str, Any], fmt: OutputFormat) -> None:
    """One object: a two-column field/value table, or its JSON/YAML."""
    if fmt.machine:
        emit_data(item, fmt)
        return
    if not is_terminal():
        width = max((len(k) for k in item), default=0)
        for key, value in item.items():
            first, *more = _nested(value).split("\n")
            typer.echo(f"{key.ljust(width)}  {first}".rstrip())
            for line in more:
                typer.echo(f"{' ' * width}  {line}".rstrip())
        return
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in item.items():
        table.add_row(Text(key), Text(_nested(value)))
    console().print(table)


def _nested(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return "\n".join(cell(v) for v in value)
    if isinstance(value, Mapping) and any(
        isinstance(v, Mapping | list) for v in value.values()
    ):
        return json.dumps(value)
    return cell(value)


def emit_secret_once(
    created: Mapping[str, Any], field: str, secret: str, fmt: OutputFormat
) -> None:
    """An object the API answers with a secret it never shows again (a token, a
    webhook's signing secret): JSON/YAML as answered; for people, the other
    fields as a record, then the secret alone on its line with a warning."""
    if fmt.machine:
        emit_data(created, fmt)
        return
    emit_record({k: v for k, v in created.items() if k != field}, fmt)
    out = console()
    out.print()
    out.print(f"[bold]{field}[/] (shown once; store it now):")
    out.print(secret, markup=False, highlight=False, soft_wrap=True)


def emit_value(message: str) -> None:
    """A plain line on stdout (an id, a secret): no markup, no wrapping."""
    typer.echo(message)


def get(*path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A column getter for a (possibly nested) field."""

    def read(row: Mapping[str, Any]) -> Any:
        value: Any = row
        for key in path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value

    return read
