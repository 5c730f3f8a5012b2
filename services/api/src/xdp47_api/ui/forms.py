"""Parsing of the UI's HTML forms into the API's write models, with errors keyed
by form field so the templates can show each one next to its input."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from xdp47_api.ui.messages import human_message, label_of

__all__ = [
    "FieldErrors",
    "FormInvalid",
    "FormState",
    "errors_from_validation",
    "field",
    "optional_int",
    "parse_json_object",
    "parse_percentages",
]

FieldErrors = dict[str, str]


class FormInvalid(Exception):
    def __init__(self, errors: FieldErrors) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class FormState:
    """A page's create form as the page shows it: empty (200), or refused (422:
    ``refused``) with what was typed and each field's error. ``context`` is what
    the templates read (``values``, ``errors``)."""

    values: Mapping[str, Any] = default(default_factory=dict)
    errors: FieldErrors = default(default_factory=dict)
    status: int = 200

    @classmethod
    def refused(cls, values: Mapping[str, Any], errors: FieldErrors) -> FormState:
        return cls(values, errors, 422)

    def context(self) -> dict[str, Any]:
        return {"values": self.values, "errors": self.errors}


def field(form: FormData, name: str) -> str:
    """A text field, stripped; '' when absent or a file."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def optional_int(value: str, name: str, errors: FieldErrors) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        errors[name] = f"{label_of(name)} must be a whole number, not {value!r}"
        return None


def parse_percentages(text: str) -> list[int] | None:
    """Comma- or space-separated whole percentages, or None when empty.

    Raises:
        ValueError: naming the first item that is not a whole number.
    """
    items = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if not items:
        return None
    out = []
    for item in items:
        try:
            out.append(int(item.rstrip("%")))
        except ValueError:
            raise ValueError(
                "Wave percentages must be whole numbers separated by commas, "
                f"not {item!r}"
            ) from None
    return out


def parse_json_object(text: str) -> dict[str, Any]:
    """A JSON object, ``{}`` when empty.

    Raises:
        ValueError: invalid JSON (with line and column) or not an object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {type(value).__name__}")
    return value


def errors_from_validation(
    exc: ValidationError, aliases: Mapping[str, str] | None = None
) -> FieldErrors:
    """Map pydantic errors to form fields, worded for people by
    ``messages.human_message`` (first error per field wins)."""
    out: FieldErrors = {}
    for err in exc.errors():
        loc = err.get("loc", ())
        name = str(loc[0]) if loc else ""
        key = (aliases or {}).get(name, name) or "form"
        out.setdefault(key, human_message(err, name or None))
    return out
