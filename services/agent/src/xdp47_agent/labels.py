"""Device labels and properties as the agent reads them, and the compatibility
check of an artifact against its properties.

The rules are the control plane's (``xdp47_common.selectors.parse_labels`` and
``xdp47_common.compat.is_compatible``), restated here in the standard library
so the agent installs alone; ``tests/contract/test_agent_wire.py`` runs both on
the same cases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "DEVICE_ID_PATTERN",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "TENANT_ID_PATTERN",
    "is_compatible",
    "parse_labels",
]

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^[^,=\s\x00]{0,63}$"
_KEY = re.compile(LABEL_KEY_PATTERN)
_VALUE = re.compile(LABEL_VALUE_PATTERN)
_MAX_LABELS = 32
_KEY_RULE = (
    "a key is 1-63 letters, digits, '.', '_', '/' or '-', "
    "starting and ending with a letter or digit"
)
_VALUE_RULE = "a value is at most 63 characters without ',', '=' or whitespace"
_FORMS = (
    'accepted forms: key=value lines "site=berlin\\nmodel=k2" or a comma list '
    '"site=berlin,model=k2"'
)


def _where(text: str, at: int) -> str:
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return f"line {line}, column {column}" if "\n" in text else f"column {column}"


def parse_labels(text: str) -> dict[str, str]:
    """``key=value`` items, comma- or newline-separated.

    Raises:
        ValueError: naming the line and column of the first malformed item.
    """
    out: dict[str, str] = {}
    for match in re.finditer(r"[^,\n]+", text):
        item = match.group().strip()
        if not item:
            continue
        at = match.start() + len(match.group()) - len(match.group().lstrip())
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        problem = None
        if not sep:
            problem = "expected key=value"
        elif not _KEY.fullmatch(key):
            problem = f"{key!r} is not a label key ({_KEY_RULE})"
        elif not _VALUE.fullmatch(value):
            at += item.index("=") + 1
            problem = f"{value!r} is not a label value ({_VALUE_RULE})"
        if problem is not None:
            raise ValueError(
                f"label {item!r} at {_where(text, at)}: {problem}; {_FORMS}"
            )
        if key in out and out[key] != value:
            raise ValueError(
                f"label: label {key!r} is given twice, as {out[key]!r} and {value!r}"
            )
        out[key] = value
    if len(out) > _MAX_LABELS:
        raise ValueError(f"label: at most {_MAX_LABELS} requirements")
    return out


def is_compatible(
    compatible: Mapping[str, list[str]] | None, properties: Mapping[str, str]
) -> bool:
    """Whether a device with these properties may run the artifact: for every
    declared key, the device's property of that key is one of the values."""
    return all(
        key in properties and properties[key] in values
        for key, values in (compatible or {}).items()
    )
