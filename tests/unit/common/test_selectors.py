"""The one selector/label parser: three forms, one selector; errors say where."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdp47_common.models.base import LABEL_KEY_PATTERN
from xdp47_common.selectors import (
    ACCEPTED_FORMS,
    MAX_REQUIREMENTS,
    Selector,
    SelectorError,
    coerce_selector,
    parse_labels,
    parse_selector,
)

keys = st.from_regex(re.compile(LABEL_KEY_PATTERN), fullmatch=True)
values = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Zs", "Zl", "Zp", "Cc", "Cs"),
        exclude_characters=",=\x85\u180e\u200b\ufeff",
    ),
    max_size=63,
).filter(lambda v: not any(c.isspace() for c in v))
mappings = st.dictionaries(keys, values, max_size=MAX_REQUIREMENTS)


@given(mappings)
def test_render_parse_round_trip(pairs):
    selector = Selector.from_mapping(pairs)
    assert parse_selector(selector.render()) == selector
    assert selector.to_json() == pairs


@given(mappings)
def test_all_forms_parse_to_the_same_selector(pairs):
    lines = "\n".join(f"{k}={v}" for k, v in pairs.items())
    commas = ",".join(f"{k}={v}" for k, v in pairs.items())
    spaced = " , ".join(f" {k} = {v} " for k, v in pairs.items())
    expected = Selector.from_mapping(pairs)
    assert parse_selector(lines) == expected
    assert parse_selector(commas) == expected
    assert parse_selector(spaced) == expected
    assert parse_selector(json.dumps(pairs)) == expected
    assert coerce_selector(lines) == coerce_selector(pairs) == pairs


@given(mappings, st.dictionaries(keys, values))
def test_matches_is_every_pair_among_the_labels(pairs, extra):
    selector = Selector.from_mapping(pairs)
    assert selector.matches({**extra, **pairs})
    for key, value in pairs.items():
        assert not selector.matches({**pairs, key: value + "x"})


def test_blank_text_is_the_empty_selector():
    assert parse_selector("") == parse_selector(" ,\n, ") == Selector()
    assert Selector().matches({"any": "thing"})


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("fleet=acc,idx", "'idx' at column 11", "expected key=value"),
        ("fleet=acc\n  idx", "'idx' at line 2, column 3", "expected key=value"),
        ("=acc", "'=acc' at column 1", "'' is not a label key"),
        ("fleet=acc,bad key=1", "'bad key=1' at column 11", "is not a label key"),
        ("a=b\nc=d e", "'c=d e' at line 2, column 3", "'d e' is not a label value"),
        ("a=b=c", "'a=b=c' at column 3", "'b=c' is not a label value"),
    ],
)
def test_malformed_text_says_where_and_what_is_accepted(text, where, problem):
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    message = str(caught.value)
    assert f"selector {where}: " in message
    assert problem in message
    assert message.endswith(ACCEPTED_FORMS)


def test_a_key_given_twice_with_two_values_is_refused():
    assert parse_selector("a=1,a=1").to_json() == {"a": "1"}
    with pytest.raises(SelectorError, match="'a' is given twice, as '1' and '2'"):
        parse_selector("a=1\na=2")


def test_too_many_requirements_are_refused():
    text = ",".join(f"k{i}=v" for i in range(MAX_REQUIREMENTS + 1))
    with pytest.raises(SelectorError, match=f"at most {MAX_REQUIREMENTS}"):
        parse_selector(text)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"bad key": "x"}, "'bad key' is not a label key"),
        ({"k": "a b"}, "value of 'k' is not a label value"),
        ({"k": 1}, "value of 'k' is not a label value"),
        ("{not json", "not a valid JSON object"),
        ("[1]", "expected key=value"),
        (5, "a selector is text or an object"),
    ],
)
def test_other_forms_are_checked_with_the_same_rules(value, match):
    with pytest.raises(SelectorError, match=match):
        coerce_selector(value)


def test_labels_use_the_same_rules_with_label_examples():
    assert parse_labels("site=berlin, model=k2,,") == {"site": "berlin", "model": "k2"}
    with pytest.raises(SelectorError) as caught:
        parse_labels("site=berlin,model")
    assert "label 'model' at column 13: expected key=value" in str(caught.value)
    assert "site=berlin,model=k2" in str(caught.value)
    assert "JSON" not in str(caught.value)
