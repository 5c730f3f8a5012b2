"""Telemetry analysis checks: their grammar, and the policy that carries them.

A check compares a metric of the devices updated in the current wave with the
same metric of comparable devices not updated yet (the baseline), over the
wave's time window::

    error_rate: updated - baseline <= 0.02
    cpu: updated / baseline <= 1.3

Grammar (strict: anything else is refused with the position and what was
expected there)::

    check      := metric ":" "updated" operator "baseline" comparison number
    metric     := [A-Za-z_][A-Za-z0-9_.]{0,63}      (a heartbeat metric key)
    operator   := "-" | "/"
    comparison := "<=" | "<" | ">=" | ">"
    number     := a finite decimal, e.g. 0.02, -1, 1.3, 2e-3

White space between tokens is free. ``parse_check`` turns the text into a
``Check``; ``str(check)`` is its canonical spelling, which is what a policy
stores, so a stored check always parses again to the same value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    computed_field,
    model_validator,
)

__all__ = [
    "DEFAULT_MIN_DEVICES",
    "MAX_CHECKS",
    "AnalysisPolicy",
    "Check",
    "CheckSyntaxError",
    "Comparison",
    "Operator",
    "parse_check",
]

DEFAULT_MIN_DEVICES = 3
MAX_CHECKS = 16
_MAX_TEXT = 200


class Operator(StrEnum):
    DIFFERENCE = "-"  # updated - baseline
    RATIO = "/"  # updated / baseline


class Comparison(StrEnum):
    LE = "<="
    LT = "<"
    GE = ">="
    GT = ">"

    def holds(self, value: float, threshold: float) -> bool:
        if self is Comparison.LE:
            return value <= threshold
        if self is Comparison.LT:
            return value < threshold
        if self is Comparison.GE:
            return value >= threshold
        return value > threshold

    @property
    def negation(self) -> str:
        """The comparison that holds when this one does not (for reasons)."""
        return {"<=": ">", "<": ">=", ">=": "<", ">": "<="}[self.value]


class CheckSyntaxError(ValueError):
    """A check that does not follow the grammar; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Check:
    """One parsed check: ``metric: updated <op> baseline <comparison> threshold``."""

    metric: str
    operator: Operator
    comparison: Comparison
    threshold: float

    def __str__(self) -> str:
        return (
            f"{self.metric}: updated {self.operator.value} baseline "
            f"{self.comparison.value} {self.threshold!r}"
        )

    @property
    def expression(self) -> str:
        return f"updated {self.operator.value} baseline"

    def value(self, updated: float, baseline: float) -> float:
        """The compared value for these two means.

        A ratio over a baseline mean of 0 is 1 when the updated mean is 0 too
        (no change), else infinite with the updated mean's sign: a metric that
        appears where there was none is an unbounded rise.
        """
        if self.operator is Operator.DIFFERENCE:
            return updated - baseline
        if baseline != 0:
            return updated / baseline
        if updated == 0:
            return 1.0
        return math.copysign(math.inf, updated)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<cmp><=|>=|<|>)
      | (?P<sym>[:/-])
    )""",
    re.VERBOSE,
)
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.lastgroup is None:
            at = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise CheckSyntaxError(f"unexpected {text[at]!r} at position {at + 1}")
        out.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup) + 1))
        pos = m.end()
    return out


def parse_check(text: str) -> Check:
    """Parse one check.

    Args:
        text: e.g. ``"error_rate: updated - baseline <= 0.02"``.

    Returns:
        The check.

    Raises:
        CheckSyntaxError: When the text does not follow the grammar; the message
            names the position and what was expected there.
    """
    if len(text) > _MAX_TEXT:
        raise CheckSyntaxError(f"longer than {_MAX_TEXT} characters")
    tokens = _tokens(text)
    expected = (
        ("name", None, "a metric name"),
        ("sym", ":", "':' after the metric name"),
        ("name", "updated", "'updated'"),
        ("sym", None, "'-' or '/' after 'updated'"),
        ("name", "baseline", "'baseline'"),
        ("cmp", None, "a comparison (<=, <, >=, >)"),
        ("number", None, "a number"),
    )
    for i, (kind, literal, what) in enumerate(expected):
        if i >= len(tokens):
            raise CheckSyntaxError(f"expected {what} at the end")
        got_kind, got, at = tokens[i]
        if got_kind != kind or (literal is not None and got != literal):
            raise CheckSyntaxError(f"expected {what} at position {at}, found {got!r}")
        if i == 3 and got not in ("-", "/"):
            raise CheckSyntaxError(f"expected {what} at position {at}, found {got!r}")
    if len(tokens) > len(expected):
        _, got, at = tokens[len(expected)]
        raise CheckSyntaxError(f"unexpected {got!r} at position {at}")
    metric = tokens[0][1]
    if not _METRIC.match(metric):
        raise CheckSyntaxError(f"metric name {metric[:80]!r} is longer than 64")
    threshold = float(tokens[6][1])
    if not math.isfinite(threshold):
        raise CheckSyntaxError(f"threshold {tokens[6][1]!r} is not a finite number")
    return Check(
        metric=metric,
        operator=Operator(tokens[3][1]),
        comparison=Comparison(tokens[5][1]),
        threshold=threshold,
    )


def _check(value: Any) -> Check:
    if isinstance(value, Check):
        return value
    if not isinstance(value, str):
        raise ValueError("a check is a string such as 'cpu: updated / baseline <= 1.3'")
    try:
        return parse_check(value)
    except CheckSyntaxError as exc:
        raise ValueError(f"invalid check {value[:_MAX_TEXT]!r}: {exc}") from None


# A check in models and JSON: its canonical text.
CheckField = Annotated[
    Check,
    PlainValidator(_check),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": _MAX_TEXT,
            "examples": ["error_rate: updated - baseline <= 0.02"],
        }
    ),
]


class AnalysisPolicy(BaseModel):
    """A policy's telemetry analysis: checks and the devices each side needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checks: Annotated[list[CheckField], Field(min_length=1, max_length=MAX_CHECKS)] = (
        Field(
            description="Checks of a metric of the wave's updated devices against "
            "devices not updated yet, e.g. 'error_rate: updated - baseline <= 0.02'.",
        )
    )
    min_devices: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=DEFAULT_MIN_DEVICES,
        description="Devices that must have reported a checked metric on each "
        "side before a check is judged; fewer by the end of the wave holds the "
        "rollout (inconclusive).",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # ``metrics`` is derived (serialized for readers of the stored policy).
        if isinstance(data, dict) and "metrics" in data:
            data = {k: v for k, v in data.items() if k != "metrics"}
        return data

    @model_validator(mode="after")
    def _distinct(self) -> AnalysisPolicy:
        seen = [str(c) for c in self.checks]
        if len(set(seen)) != len(seen):
            raise ValueError("checks: the same check is listed twice")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names the checks read, sorted, each once."""
        return tuple(sorted({c.metric for c in self.checks}))
