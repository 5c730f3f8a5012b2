"""Targeting helpers of the CLI: an artifact's ``--compatible`` options, and the
live count of the devices a selector matches (``GET /api/devices:count``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xdp47_cli.client import ApiClient
from xdp47_cli.errors import CliError
from xdp47_common.compat import coerce_compatible
from xdp47_common.selectors import SelectorError

__all__ = ["COUNT_PATH", "compatible_option", "count_matching"]

COUNT_PATH = "/api/devices:count"


def compatible_option(values: Iterable[str]) -> dict[str, list[str]]:
    """``--compatible`` options (each ``k=v``, ``k in (a,b)`` or a comma list of
    them) as the artifact's ``compatible`` object."""
    try:
        return coerce_compatible(",".join(values))
    except SelectorError as exc:
        raise CliError(f"--compatible: {exc}") from None


def count_matching(
    client: ApiClient, selector: str, *, by: str | None = None, group: str | None = None
) -> dict[str, Any]:
    """The API's count of the devices ``selector`` matches now."""
    params = {"selector": selector, "by": by, "group_id": group}
    answer: dict[str, Any] = client.get(COUNT_PATH, params=params)
    return answer
