"""Artifact compatibility: what an artifact declares it runs on, checked against
what a device is (the properties its agent reports).

Pure: no I/O. An artifact's ``compatible`` is an object ``{key: [values]}``
(``{"device_type": ["kiosk-k2", "kiosk-k3"], "arch": ["arm64"]}``); a device is
compatible when, for every key, its property of that key is one of the values.
``{}`` declares nothing: every device is compatible. The rule is a selector
(``key in (values)`` per key), so the one evaluator of ``xdp47_common.selectors``
decides it, in the planner, in the agent and in SQL
(``xdp47_compatible_path``, migration 0016).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from xdp47_common.selectors import (
    MAX_REQUIREMENTS,
    MAX_VALUES,
    Requirement,
    Selector,
    SelectorError,
    parse_selector,
)

__all__ = [
    "check_compatible",
    "coerce_compatible",
    "compatibility_selector",
    "is_compatible",
]


def check_compatible(value: Any) -> dict[str, list[str]]:
    """Validate a declared compatibility; keys and values follow the label rules.

    Raises:
        SelectorError: not an object of non-empty lists of label values.
    """
    if not isinstance(value, Mapping):
        raise SelectorError('compatible is an object {"key": ["value", ...]}')
    if len(value) > MAX_REQUIREMENTS:
        raise SelectorError(f"compatible: at most {MAX_REQUIREMENTS} keys")
    out: dict[str, list[str]] = {}
    for key, values in value.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not values or len(values) > MAX_VALUES:
            raise SelectorError(
                f"compatible[{key!r}] is a list of 1 to {MAX_VALUES} values"
            )
        # Checked like the requirement it becomes.
        Selector.from_json([{"key": key, "operator": "in", "values": values}])
        out[key] = list(dict.fromkeys(values))
    return out


def coerce_compatible(value: Any) -> dict[str, list[str]]:
    """A declared compatibility as a JSON object or as selector text limited to
    ``=`` and ``in`` (``"arch=arm64,device_type in (kiosk-k2,kiosk-k3)"``).

    Raises:
        SelectorError: malformed text, another operator, or a malformed object.
    """
    if not isinstance(value, str):
        return check_compatible(value)
    if value.lstrip().startswith("{"):
        return check_compatible(parse_json_object(value))
    out: dict[str, list[str]] = {}
    for r in parse_selector(value).requirements:
        if r.operator not in ("=", "in"):
            raise SelectorError(
                f"compatible: {r.render()!r}: only key=value and key in (a,b) "
                "declare what an artifact runs on"
            )
        if r.key in out:
            raise SelectorError(f"compatible: {r.key!r} is given twice")
        out[r.key] = list(r.values)
    return check_compatible(out)


def parse_json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SelectorError(f"compatible is not valid JSON: {exc}") from None


def compatibility_selector(compatible: Mapping[str, list[str]]) -> Selector:
    """The selector a device's properties must match."""
    return Selector(
        tuple(Requirement(k, "in", tuple(v)) for k, v in compatible.items())
    )


def is_compatible(
    compatible: Mapping[str, list[str]] | None, properties: Mapping[str, str]
) -> bool:
    """Tell whether a device with these properties may run the artifact."""
    return compatibility_selector(compatible or {}).matches(properties)
