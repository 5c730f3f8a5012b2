"""The text side of ``xdp47_common.selectors``: the label alphabet, splitting text
into requirements (commas inside parentheses separate values, not requirements)
and reading one requirement, with the position of every mistake."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = [
    "LABEL_KEY_PATTERN",
    "LABEL_VALUE_PATTERN",
    "SelectorError",
    "check_key",
    "check_value",
    "items",
    "malformed",
    "split_requirement",
]

# The label alphabet lives here, beside its parser; ``models.base`` re-exports
# it for the models (this module imports nothing of the package).
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^[^,=\s\x00]{0,63}$"
_KEY = re.compile(LABEL_KEY_PATTERN)
_VALUE = re.compile(LABEL_VALUE_PATTERN)
KEY_RULE = (
    "a key is 1-63 letters, digits, '.', '_', '/' or '-', "
    "starting and ending with a letter or digit"
)
VALUE_RULE = "a value is at most 63 characters without ',', '=' or whitespace"
# The key of a requirement: everything up to an operator or blank.
_HEAD = re.compile(r"([^\s=!(),]*)\s*")
_SET_OP = re.compile(r"(notin|in)\s*\(")


class SelectorError(ValueError):
    """Malformed selector or label text.

    Attributes:
        position: 0-based offset of the mistake in the text (None for the JSON
            forms, where the key is named instead).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


def check_key(key: Any) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise SelectorError(f"{key!r} is not a label key; {KEY_RULE}")


def check_value(value: Any, what: str, *, set_item: bool = False) -> None:
    if (
        not isinstance(value, str)
        or not _VALUE.fullmatch(value)
        or (set_item and ("(" in value or ")" in value or not value))
    ):
        rule = VALUE_RULE + (", '(' or ')', not empty" if set_item else "")
        raise SelectorError(f"{what} is not a label value; {rule}")


def where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}" if "\n" in text else f"column {column}"


def malformed(
    text: str, what: str, item: str, at: int, problem: str, forms: str
) -> SelectorError:
    return SelectorError(
        f"{what} {item!r} at {where(text, at)}: {problem}; {forms}", at
    )


def items(text: str, forms: str, *, nested: bool = True) -> Iterator[tuple[int, str]]:
    """Non-blank items between top-level commas and newlines, with their offsets.

    Only the parenthesis after ``in``/``notin`` opens a value list (an equality's
    value may hold ``(`` or ``)``, as it always could)."""
    start, in_set = 0, False
    for i, c in enumerate([*text, ","]):
        if nested and c == "(" and not in_set:
            in_set = _OPENS_SET.search(text, start, i) is not None
        elif nested and c == ")" and in_set:
            in_set = False
        elif c in ",\n" and (not in_set or i == len(text)):
            raw = text[start:i]
            stripped = raw.strip()
            if stripped:
                yield start + len(raw) - len(raw.lstrip()), stripped
            start = i + 1


_OPENS_SET = re.compile(r"[^\s=!(),]\s*\b(?:in|notin)\s*$")


def split_requirement(
    text: str, item: str, at: int, forms: str
) -> tuple[str, str, tuple[str, ...]]:
    """Read one requirement: its key, operator and values."""

    def fail(problem: str, offset: int = 0) -> SelectorError:
        return malformed(text, "selector", item, at + offset, problem, forms)

    negated = item.startswith("!") and not item.startswith("!=")
    head = _HEAD.match(item, 1 if negated else 0)
    assert head is not None  # the pattern matches the empty string
    key, rest = head.group(1), item[head.end() :]
    if not _KEY.fullmatch(key):
        return_offset = 1 if negated else 0
        raise fail(f"{key!r} is not a label key ({KEY_RULE})", return_offset)
    if negated or not rest:
        if rest:
            raise fail(f"!{key} takes no operator or value", head.end())
        return key, "!" if negated else "exists", ()
    op_at = head.end()
    for op, token in (("!=", "!="), ("=", "=="), ("=", "=")):
        if rest.startswith(token):
            value = rest[len(token) :].strip()
            if not _VALUE.fullmatch(value):
                value_at = (
                    op_at
                    + len(token)
                    + len(rest[len(token) :])
                    - len(rest[len(token) :].lstrip())
                )
                raise fail(f"{value!r} is not a label value ({VALUE_RULE})", value_at)
            return key, op, (value,)
    set_op = _SET_OP.match(rest)
    if set_op is None:
        raise fail(f"expected =, !=, in (...) or notin (...) after {key!r}", op_at)
    inner_at = op_at + set_op.end()
    close = item.find(")", inner_at)
    if close < 0:
        raise fail("'(' is not closed", inner_at - 1)
    if item[close + 1 :].strip():
        raise fail("nothing may follow the closing ')'", close + 1)
    values: list[str] = []
    offset = inner_at
    for raw in item[inner_at:close].split(","):
        value = raw.strip()
        if not value or "(" in value or not _VALUE.fullmatch(value):
            raise fail(
                f"{value!r} is not a label value ({VALUE_RULE}, not empty)",
                offset + len(raw) - len(raw.lstrip()),
            )
        if value not in values:
            values.append(value)
        offset += len(raw) + 1
    return key, set_op.group(1), tuple(values)
