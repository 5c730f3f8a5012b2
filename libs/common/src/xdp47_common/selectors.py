"""Label selectors and label lists: the one parser of the ``key=value`` text
people type (API bodies, UI forms, CLI options, the agent's
``XDP47_DEVICE_LABELS``).

Pure: no I/O. A selector is a sequence of requirements joined by *and*; a text
form separates them with commas or newlines (``fleet=acc,idx=0`` and
``fleet=acc\\nidx=0`` are the same selector), and the JSON form is an object
(``{"fleet": "acc", "idx": "0"}``). Today the only operator is equality;
``Requirement`` carries an operator and a tuple of values so that set-based
operators (``!=``, ``in``, ``notin``, exists) can be added here without changing
the callers, which only ``parse_selector``, ``render``, ``matches`` and
``to_json``. A label list (``parse_labels``) is a device's own labels: always
plain ``key=value``, whatever selectors grow into.

Errors are ``SelectorError`` (a ``ValueError``) naming the line and column of the
first mistake and the accepted forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACCEPTED_FORMS",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "MAX_REQUIREMENTS",
    "Requirement",
    "Selector",
    "SelectorError",
    "coerce_selector",
    "parse_labels",
    "parse_selector",
]

# The label alphabet lives here, beside its parser; ``models.base`` re-exports
# it for the models (this module imports nothing of the package).
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^[^,=\s\x00]{0,63}$"
MAX_REQUIREMENTS = 32
ACCEPTED_FORMS = (
    'accepted forms: a JSON object {"fleet": "acc", "idx": "0"}, key=value '
    'lines "fleet=acc\\nidx=0", or a comma list "fleet=acc,idx=0"'
)
_LABEL_FORMS = (
    'accepted forms: key=value lines "site=berlin\\nmodel=k2" or a comma list '
    '"site=berlin,model=k2"'
)
_KEY = re.compile(LABEL_KEY_PATTERN)
_VALUE = re.compile(LABEL_VALUE_PATTERN)
_ITEM = re.compile(r"[^,\n]+")

Operator = Literal["="]


class SelectorError(ValueError):
    """Malformed selector or label text.

    Attributes:
        position: 0-based offset of the mistake in the text (None for the JSON
            form, where the key is named instead).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Requirement:
    """One condition on one label: ``key <operator> values``."""

    key: str
    operator: Operator
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return labels.get(self.key) in self.values

    def render(self) -> str:
        return f"{self.key}={self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """Requirements that must all hold (an empty selector matches every device)."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def from_mapping(cls, pairs: Mapping[str, Any]) -> Selector:
        """The JSON object form, checked with the same rules as the text forms.

        Raises:
            SelectorError: a key or value that is not a label key or value.
        """
        if len(pairs) > MAX_REQUIREMENTS:
            raise SelectorError(f"at most {MAX_REQUIREMENTS} requirements")
        out = []
        for raw_key, raw_value in pairs.items():
            # Stripped like the text forms (and like every string of a write model).
            key = raw_key.strip() if isinstance(raw_key, str) else raw_key
            value = raw_value.strip() if isinstance(raw_value, str) else raw_value
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise SelectorError(f"{key!r} is not a label key; {_KEY_RULE}")
            if not isinstance(value, str) or not _VALUE.fullmatch(value):
                raise SelectorError(
                    f"value of {key!r} is not a label value; {_VALUE_RULE}"
                )
            out.append(Requirement(key, "=", (value,)))
        return cls(tuple(out))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def render(self) -> str:
        """The canonical text: a comma list, parsed back to the same selector."""
        return ",".join(r.render() for r in self.requirements)

    def to_json(self) -> dict[str, str]:
        """The form stored with a rollout and sent over the API."""
        return {r.key: r.values[0] for r in self.requirements}


_KEY_RULE = (
    "a key is 1-63 letters, digits, '.', '_', '/' or '-', "
    "starting and ending with a letter or digit"
)
_VALUE_RULE = "a value is at most 63 characters without ',', '=' or whitespace"


def _where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}" if "\n" in text else f"column {column}"


def _items(text: str) -> Iterator[tuple[int, str]]:
    """Non-blank items between commas and newlines, with their offsets."""
    for match in _ITEM.finditer(text):
        raw = match.group()
        stripped = raw.strip()
        if stripped:
            yield match.start() + (len(raw) - len(raw.lstrip())), stripped


def _malformed(text: str, what: str, item: str, at: int, problem: str) -> SelectorError:
    forms = ACCEPTED_FORMS if what == "selector" else _LABEL_FORMS
    return SelectorError(
        f"{what} {item!r} at {_where(text, at)}: {problem}; {forms}", at
    )


def _equalities(text: str, what: str) -> Iterator[tuple[str, str]]:
    for at, item in _items(text):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise _malformed(text, what, item, at, "expected key=value")
        if not _KEY.fullmatch(key):
            raise _malformed(
                text, what, item, at, f"{key!r} is not a label key ({_KEY_RULE})"
            )
        if not _VALUE.fullmatch(value):
            raise _malformed(
                text,
                what,
                item,
                at + item.index("=") + 1,
                f"{value!r} is not a label value ({_VALUE_RULE})",
            )
        yield key, value


def _pairs(text: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _equalities(text, what):
        if key in out and out[key] != value:
            raise SelectorError(
                f"{what}: label {key!r} is given twice, as {out[key]!r} and {value!r}"
            )
        out[key] = value
    if len(out) > MAX_REQUIREMENTS:
        raise SelectorError(f"{what}: at most {MAX_REQUIREMENTS} requirements")
    return out


def parse_selector(text: str) -> Selector:
    """Parse a selector's text form (comma list or lines; blank items ignored),
    or a JSON object written as text (a key never starts with ``{``).

    Args:
        text: e.g. ``"fleet=acc,idx=0"``, ``"fleet=acc\\nidx=0"`` or
            ``'{"fleet": "acc"}'``.

    Returns:
        The selector; ``Selector()`` (matches everything) for blank text.

    Raises:
        SelectorError: naming the line and column of the first malformed item.
    """
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise SelectorError(
                f"selector is not a valid JSON object: {exc}; {ACCEPTED_FORMS}"
            ) from None
        if not isinstance(value, dict):
            raise SelectorError(f"selector is not a JSON object; {ACCEPTED_FORMS}")
        return Selector.from_mapping(value)
    pairs = _pairs(text, "selector")
    return Selector(tuple(Requirement(k, "=", (v,)) for k, v in pairs.items()))


def parse_labels(text: str) -> dict[str, str]:
    """Parse a device's labels: ``key=value`` items, comma- or newline-separated.

    Raises:
        SelectorError: naming the line and column of the first malformed item.
    """
    return _pairs(text, "label")


def coerce_selector(value: Any) -> dict[str, str]:
    """A selector in any accepted form (text or JSON object) as its JSON form.

    Raises:
        SelectorError: malformed text, an invalid key or value, or another type.
    """
    if isinstance(value, str):
        return parse_selector(value).to_json()
    if isinstance(value, Mapping):
        return Selector.from_mapping(value).to_json()
    raise SelectorError(f"a selector is text or an object; {ACCEPTED_FORMS}")
