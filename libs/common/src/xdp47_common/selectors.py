"""Label selectors and label lists: the one parser and the one evaluator of the
selectors people type (API bodies, UI forms, CLI options) and of the labels a
device declares (the agent's ``XDP47_DEVICE_LABELS``).

Pure: no I/O. A selector is a sequence of requirements joined by *and*, with the
operators of Kubernetes label selectors::

    model=k2            the label is k2            (``==`` is accepted too)
    model!=k2           the label is not k2, or the device has no such label
    model in (k2,k3)    the label is one of the values
    model notin (k2,k3) the label is none of them, or absent
    model               the device has the label, whatever its value
    !model              the device has no such label

A text form separates requirements with commas or newlines (``fleet=acc,idx=0``
and ``fleet=acc\\nidx=0`` are the same selector; commas inside parentheses
separate values). The JSON forms are an object (``{"fleet": "acc"}``, equality
only: the form stored for equality selectors, so older rows and clients stay
valid) and a list of ``{"key", "operator", "values"}`` objects (any operator:
``Selector.to_json`` gives it when an operator other than ``=`` is used). The
same rules run in SQL (``xdp47_selector_matches``, migration 0016) for planning
at a million devices; a property test holds the two together. A label list
(``parse_labels``) is a device's own labels: always plain ``key=value``.

Errors are ``SelectorError`` (a ``ValueError``) naming the line and column of the
first mistake (``position`` holds its offset) and the accepted forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from xdp47_common._selector_text import (
    KEY_RULE,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    VALUE_RULE,
    SelectorError,
    check_key,
    check_value,
    items,
    malformed,
    split_requirement,
)

__all__ = [
    "ACCEPTED_FORMS",
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "MAX_REQUIREMENTS",
    "MAX_VALUES",
    "Operator",
    "Requirement",
    "Selector",
    "SelectorError",
    "SelectorJson",
    "coerce_selector",
    "parse_labels",
    "parse_selector",
]

MAX_REQUIREMENTS = 32
MAX_VALUES = 64
ACCEPTED_FORMS = (
    "accepted forms: requirements separated by commas or newlines, each "
    "key=value, key!=value, key in (a,b), key notin (a,b), key (exists) or !key "
    '(absent), e.g. "fleet=acc,model in (k2,k3)"; or a JSON object '
    '{"fleet": "acc"}'
)
_LABEL_FORMS = (
    'accepted forms: key=value lines "site=berlin\\nmodel=k2" or a comma list '
    '"site=berlin,model=k2"'
)

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]
_OPERATORS: frozenset[str] = frozenset(get_args(Operator))
# Operators with a value list; the others take none (exists, !) ...
_WITH_VALUES = frozenset({"=", "!=", "in", "notin"})
# ... and those satisfied by a device without the label.
_NEGATIVE = frozenset({"!=", "notin", "!"})
SelectorJson = dict[str, str] | list[dict[str, Any]]


@dataclass(frozen=True)
class Requirement:
    """One condition on one label: ``key <operator> values``."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if value is None:
            return self.operator in _NEGATIVE
        if self.operator in ("exists", "!"):
            return self.operator == "exists"
        return (value in self.values) != (self.operator in _NEGATIVE)

    def render(self) -> str:
        if self.operator in ("=", "!="):
            return f"{self.key}{self.operator}{self.values[0]}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return self.key if self.operator == "exists" else f"!{self.key}"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "operator": self.operator, "values": list(self.values)}


@dataclass(frozen=True)
class Selector:
    """Requirements that must all hold (an empty selector matches every device)."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def from_mapping(cls, pairs: Mapping[str, Any]) -> Selector:
        """The JSON object form (equality), checked like the text forms.

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
            check_key(key)
            check_value(value, f"value of {key!r}")
            out.append(Requirement(key, "=", (value,)))
        return cls(tuple(out))

    @classmethod
    def from_json(cls, value: Any) -> Selector:
        """Either JSON form: the object (equality) or the requirement list.

        Raises:
            SelectorError: a malformed requirement, key, value or operator.
        """
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise SelectorError(
                f"a selector is text, an object or a list; {ACCEPTED_FORMS}"
            )
        out = []
        for item in value:
            if not isinstance(item, Mapping) or set(item) - {
                "key",
                "operator",
                "values",
            }:
                raise SelectorError(
                    'a selector list holds {"key", "operator", "values"} objects; '
                    + ACCEPTED_FORMS
                )
            key, op, values = (
                item.get("key"),
                item.get("operator"),
                item.get("values", []),
            )
            check_key(key)
            if op not in _OPERATORS:
                raise SelectorError(
                    f"operator of {key!r} is {op!r}; one of {sorted(_OPERATORS)}"
                )
            if not isinstance(values, list):
                raise SelectorError(f"values of {key!r} is not a list")
            for v in values:
                check_value(v, f"a value of {key!r}", set_item=op in ("in", "notin"))
            out.append(_requirement(str(key), cast(Operator, op), tuple(values)))
        return _checked(out)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether every requirement holds for these labels."""
        return all(r.matches(labels) for r in self.requirements)

    @property
    def equality_only(self) -> bool:
        return all(r.operator == "=" for r in self.requirements)

    def render(self) -> str:
        """The canonical text: a comma list, parsed back to the same selector."""
        return ",".join(r.render() for r in self.requirements)

    def to_json(self) -> SelectorJson:
        """The form stored with a rollout or group and sent over the API: the
        object when every requirement is an equality, else the list."""
        if self.equality_only:
            return {r.key: r.values[0] for r in self.requirements}
        return [r.to_json() for r in self.requirements]

    def sql_json(self) -> str:
        """``to_json`` as text, the parameter of ``xdp47_selector_matches``."""
        return json.dumps(self.to_json(), sort_keys=True)


def _requirement(key: str, op: Operator, values: tuple[str, ...]) -> Requirement:
    if op in _WITH_VALUES and not values:
        raise SelectorError(f"{key!r} {op} needs a value")
    if op in ("=", "!=") and len(values) != 1:
        raise SelectorError(f"{key!r} {op} takes one value")
    if op not in _WITH_VALUES and values:
        raise SelectorError(f"{key!r} {op} takes no value")
    if len(values) > MAX_VALUES:
        raise SelectorError(f"{key!r}: at most {MAX_VALUES} values")
    return Requirement(key, op, values)


def _checked(requirements: list[Requirement], what: str = "selector") -> Selector:
    """Drop repeated requirements; refuse two equalities that cannot both hold."""
    seen: dict[str, str] = {}
    unique: list[Requirement] = []
    for r in requirements:
        if r.operator == "=":
            if r.key in seen and seen[r.key] != r.values[0]:
                raise SelectorError(
                    f"{what}: label {r.key!r} is given twice, as {seen[r.key]!r} "
                    f"and {r.values[0]!r}"
                )
            seen[r.key] = r.values[0]
        if r not in unique:
            unique.append(r)
    if len(unique) > MAX_REQUIREMENTS:
        raise SelectorError(f"{what}: at most {MAX_REQUIREMENTS} requirements")
    return Selector(tuple(unique))


def parse_selector(text: str) -> Selector:
    """Parse a selector's text form (comma list or lines; blank items ignored),
    or a JSON form written as text (a key never starts with ``{`` or ``[``).

    Args:
        text: e.g. ``"fleet=acc,model in (k2,k3)"``, ``"fleet=acc\\n!test"`` or
            ``'{"fleet": "acc"}'``.

    Returns:
        The selector; ``Selector()`` (matches everything) for blank text.

    Raises:
        SelectorError: naming the line and column of the first mistake.
    """
    if text.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise SelectorError(
                f"selector is not valid JSON: {exc}; {ACCEPTED_FORMS}"
            ) from None
        return Selector.from_json(value)
    out = []
    for at, item in items(text, ACCEPTED_FORMS):
        key, op, values = split_requirement(text, item, at, ACCEPTED_FORMS)
        try:
            out.append(_requirement(key, cast(Operator, op), values))
        except SelectorError as exc:
            raise malformed(
                text, "selector", item, at, str(exc), ACCEPTED_FORMS
            ) from None
    return _checked(out)


def parse_labels(text: str) -> dict[str, str]:
    """Parse a device's labels: ``key=value`` items, comma- or newline-separated.

    Raises:
        SelectorError: naming the line and column of the first malformed item.
    """
    out: dict[str, str] = {}
    for at, item in items(text, _LABEL_FORMS, nested=False):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise malformed(text, "label", item, at, "expected key=value", _LABEL_FORMS)
        if not _KEY.fullmatch(key):
            raise malformed(
                text,
                "label",
                item,
                at,
                f"{key!r} is not a label key ({KEY_RULE})",
                _LABEL_FORMS,
            )
        if not _VALUE.fullmatch(value):
            raise malformed(
                text,
                "label",
                item,
                at + item.index("=") + 1,
                f"{value!r} is not a label value ({VALUE_RULE})",
                _LABEL_FORMS,
            )
        if key in out and out[key] != value:
            raise SelectorError(
                f"label: label {key!r} is given twice, as {out[key]!r} and {value!r}"
            )
        out[key] = value
    if len(out) > MAX_REQUIREMENTS:
        raise SelectorError(f"label: at most {MAX_REQUIREMENTS} requirements")
    return out


_KEY = re.compile(LABEL_KEY_PATTERN)
_VALUE = re.compile(LABEL_VALUE_PATTERN)


def coerce_selector(value: Any) -> SelectorJson:
    """A selector in any accepted form (text or JSON) as its JSON form.

    Raises:
        SelectorError: malformed text, an invalid key or value, or another type.
    """
    if isinstance(value, str):
        return parse_selector(value).to_json()
    return Selector.from_json(value).to_json()
