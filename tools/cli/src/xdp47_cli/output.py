"""Rendering: rich tables for people, JSON (the API's own objects) for programs.

``-o json`` prints exactly what the API answered (a list command prints one JSON
array of every item it fetched), so scripts can rely on the API's field names.
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
    "emit_json",
    "emit_list",
    "emit_record",
    "emit_value",
    "get",
]

# Without a terminal rich would wrap tables at 80 columns; ids are long.
PIPE_WIDTH = 250


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = typer.Option(
    OutputFormat.TABLE, "--output", "-o", help="table for people, json for programs."
)


@dataclass(frozen=True)
class Column:
    header: str
    get: Callable[[Mapping[str, Any]], Any]


def console() -> Console:
    tty = sys.stdout.isatty()
    return Console(highlight=False, width=None if tty else PIPE_WIDTH)


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


def emit_list(
    items: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    fmt: OutputFormat,
) -> None:
    rows = list(items)
    if fmt is OutputFormat.JSON:
        emit_json(rows)
        return
    table = Table(show_edge=False, box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column.header.upper(), overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell(column.get(row))) for column in columns))
    out = console()
    if rows:
        out.print(table)
    else:
        out.print("(none)")


def emit_record(item: Mapping[str, Any], fmt: OutputFormat) -> None:
    """One object: a two-column field/value table, or its JSON."""
    if fmt is OutputFormat.JSON:
        emit_json(item)
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
