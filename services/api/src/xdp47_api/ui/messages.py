"""What a person reads for a validation error: the one place that turns pydantic's
error records (``String should match pattern '^[0-9a-fA-F]{64}$'``) into sentences
(``SHA256 must be 64 hexadecimal characters``). Every UI form and the UI's error
page use it; the REST API keeps pydantic's wording, which clients may parse.

A message names the field by its label, keyed by the error's type and, for a
pattern, by the field (a pattern means something only for its field). A type not
listed keeps pydantic's message, so a new constraint is never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["human_message", "label_of"]

# Labels that are not the field name with its underscores as spaces.
LABELS: Mapping[str, str] = {
    "sha256": "SHA256",
    "uri": "URI",
    "artifact_id": "Artifact",
    "policy_id": "Policy",
    "rollout_id": "Rollout id",
    "token_id": "Token id",
    "wave_percentages": "Wave percentages",
    "expires_in_days": "Expires in days",
    "min_success_ratio": "Minimum success ratio",
    "max_failures_per_wave": "Max failures per wave",
    "size": "Size in bytes",
}
# What a pattern asks of its field, said for people.
PATTERNS: Mapping[str, str] = {
    "sha256": "must be 64 hexadecimal characters (0-9, a-f)",
    "tenant": "must be lowercase letters, digits and dashes, starting with a "
    "letter or digit (at most 63)",
    "channel": "must be lowercase letters, digits, '.', '_' and '-', starting "
    "with a letter or digit (at most 32)",
    "device_id": "must be letters, digits, '_' and '-', starting with a letter "
    "or digit (at most 128)",
}
# The noun for one item of a list or mapping field.
ITEMS: Mapping[str, str] = {
    "scopes": "scope",
    "wave_percentages": "percentage",
    "selector": "label",
}


def label_of(name: str) -> str:
    """The label a person reads for the field ``name``."""
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _plural(n: Any, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def human_message(err: Mapping[str, Any], name: str | None = None) -> str:
    """One pydantic error record as a sentence for people.

    ``name`` is the field the message is shown for (default: the first part of the
    error's location); the sentence starts with its label.
    """
    loc: Sequence[Any] = err.get("loc", ())
    name = name or (str(loc[0]) if loc else "")
    label = label_of(name) if name else "This value"
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    noun = ITEMS.get(name, "item")
    match kind:
        case "missing":
            return f"{label} is required"
        case "string_too_short":
            n = ctx.get("min_length", 1)
            if n == 1:
                return f"{label} is required"
            return f"{label} must be at least {_plural(n, 'character')}"
        case "string_too_long":
            return (
                f"{label} must be at most {_plural(ctx.get('max_length'), 'character')}"
            )
        case "string_pattern_mismatch":
            return (
                f"{label} {PATTERNS.get(name, 'has characters that are not allowed')}"
            )
        case "too_short":
            return f"Choose at least {_plural(ctx.get('min_length', 1), noun)}"
        case "too_long":
            return f"{label} allows at most {_plural(ctx.get('max_length'), noun)}"
        case "int_parsing" | "int_type" | "int_from_float":
            return f"{label} must be a whole number"
        case "float_parsing" | "float_type":
            return f"{label} must be a number"
        case "greater_than_equal":
            return f"{label} must be at least {ctx.get('ge')}"
        case "greater_than":
            return f"{label} must be more than {ctx.get('gt')}"
        case "less_than_equal":
            return f"{label} must be at most {ctx.get('le')}"
        case "less_than":
            return f"{label} must be less than {ctx.get('lt')}"
        case "bool_parsing" | "bool_type":
            return f"{label} must be yes or no"
        case "url_scheme":
            return f"{label} must start with http:// or https://"
        case "url_parsing" | "url_type" | "url_syntax_violation":
            return f"{label} must be a web address starting with http:// or https://"
        case "uuid_parsing" | "uuid_type" | "uuid_version":
            return f"{label} {err.get('input')!r} is not a valid id"
        case "enum" | "literal_error":
            return f"{label}: {err.get('input')!r} is not one of {ctx.get('expected')}"
        case "extra_forbidden":
            return f"{label} is not a field of this form"
        case "value_error":
            # Our own validators already speak to people; they may open with the
            # field's name, which reads better as its label.
            text = str(ctx.get("error", err.get("msg", "")))
            text = text.removeprefix("Value error, ")
            if name and text.startswith(f"{name} "):
                text = f"{label} {text[len(name) + 1 :]}"
            return text[:1].upper() + text[1:]
    return str(err.get("msg", "invalid"))
