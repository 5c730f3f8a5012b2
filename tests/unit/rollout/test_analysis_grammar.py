"""The telemetry analysis check grammar: what parses, what is refused and why."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from xdp47_common.models import PolicyCreate
from xdp47_common.rollout import (
    AnalysisPolicy,
    Check,
    CheckSyntaxError,
    EffectivePolicy,
    parse_check,
)
from xdp47_common.rollout.analysis import Comparison, Operator


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "error_rate: updated - baseline <= 0.02",
            Check("error_rate", Operator.DIFFERENCE, Comparison.LE, 0.02),
        ),
        (
            "cpu: updated / baseline <= 1.3",
            Check("cpu", Operator.RATIO, Comparison.LE, 1.3),
        ),
        (
            "  mem:updated/baseline<2  ",
            Check("mem", Operator.RATIO, Comparison.LT, 2.0),
        ),
        (
            "app.latency_p99 : updated-baseline >= -5e-1",
            Check("app.latency_p99", Operator.DIFFERENCE, Comparison.GE, -0.5),
        ),
        ("x: updated / baseline > .5", Check("x", Operator.RATIO, Comparison.GT, 0.5)),
    ],
)
def test_valid_checks_parse(text: str, expected: Check) -> None:
    assert parse_check(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a metric name at the end"),
        ("error_rate updated - baseline <= 1", "expected ':' after the metric name"),
        ("cpu: baseline - updated <= 1", "expected 'updated' at position 6"),
        ("cpu: updated * baseline <= 1", "unexpected '*' at position 14"),
        ("cpu: updated : baseline <= 1", "expected '-' or '/' after 'updated'"),
        ("cpu: updated - base <= 1", "expected 'baseline'"),
        ("cpu: updated - baseline == 1", "unexpected '=' at position 25"),
        ("cpu: updated - baseline <= ", "expected a number at the end"),
        ("cpu: updated - baseline <= high", "expected a number at position 28"),
        ("cpu: updated - baseline <= 1 and more", "unexpected 'and' at position 30"),
        ("cpu: updated - baseline <= 1e999", "not a finite number"),
        ("9cpu: updated - baseline <= 1", "expected a metric name at position 1"),
        ("x" * 65 + ": updated - baseline <= 1", "longer than 64"),
        ("cpu: updated - baseline <= 1" + " " * 200, "longer than 200"),
    ],
)
def test_invalid_checks_say_where_and_why(text: str, message: str) -> None:
    with pytest.raises(CheckSyntaxError, match=re.escape(message)):
        parse_check(text)


_metric = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,63}", fullmatch=True)
_checks = st.builds(
    Check,
    metric=_metric,
    operator=st.sampled_from(Operator),
    comparison=st.sampled_from(Comparison),
    threshold=st.floats(allow_nan=False, allow_infinity=False, width=64),
)


@given(_checks)
def test_the_canonical_text_parses_back_to_the_same_check(check: Check) -> None:
    assert parse_check(str(check)) == check


@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_with_a_syntax_error(text: str) -> None:
    try:
        check = parse_check(text)
    except CheckSyntaxError as exc:
        message = str(exc)
    else:
        assert math.isfinite(check.threshold)
        assert parse_check(str(check)) == check
        return
    assert message


def test_ratio_over_a_zero_baseline() -> None:
    ratio = parse_check("e: updated / baseline <= 2")
    assert ratio.value(0.0, 0.0) == 1.0
    assert ratio.value(0.3, 0.0) == math.inf
    assert ratio.value(-0.3, 0.0) == -math.inf
    assert ratio.value(3.0, 2.0) == 1.5


def test_policy_stores_canonical_checks_and_derives_the_metrics() -> None:
    policy = AnalysisPolicy.model_validate(
        {
            "checks": [
                "cpu:updated/baseline<=1.3",
                "error_rate: updated - baseline <= 0.02",
            ]
        }
    )
    dumped = policy.model_dump(mode="json")
    assert dumped == {
        "checks": [
            "cpu: updated / baseline <= 1.3",
            "error_rate: updated - baseline <= 0.02",
        ],
        "min_devices": 3,
        "metrics": ["cpu", "error_rate"],
    }
    # What the scheduler keeps (effective_policy jsonb) reads back unchanged.
    assert AnalysisPolicy.model_validate(dumped) == policy
    effective = EffectivePolicy.model_validate(
        {
            "require_ok": True,
            "skip_offline": True,
            "grace_seconds": 0,
            "min_success_ratio": 1,
            "max_failures_per_wave": 0,
            "abort_on_zero_eligible": False,
            "wave_deadline_seconds": 60,
            "analysis": dumped,
        }
    )
    assert EffectivePolicy.model_validate_json(effective.model_dump_json()) == effective


@pytest.mark.parametrize(
    ("analysis", "message"),
    [
        ({"checks": []}, "at least 1 item"),
        ({"checks": ["cpu: updated % baseline <= 1"]}, "unexpected '%' at position"),
        ({"checks": [3]}, "a check is a string"),
        ({"checks": ["cpu: updated / baseline <= 1"] * 2}, "listed twice"),
        ({"checks": ["cpu: updated / baseline <= 1"], "min_devices": 0}, "greater"),
        ({"checks": ["cpu: updated / baseline <= 1"], "window": 3}, "Extra inputs"),
    ],
)
def test_policy_create_refuses_bad_analysis(
    analysis: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)) as caught:
        PolicyCreate.model_validate({"tenant": "t", "name": "p", "analysis": analysis})
    assert caught.value.errors()[0]["loc"][0] == "analysis"
