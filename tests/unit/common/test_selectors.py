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
    Requirement,
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
        ("fleet=acc,idx x", "'idx x' at column 15", "expected =, !=, in (...)"),
        ("fleet=acc\n  idx x", "'idx x' at line 2, column 7", "expected =, !="),
        ("=acc", "'=acc' at column 1", "'' is not a label key"),
        ("fleet=acc,bad key=1", "'bad key=1' at column 15", "after 'bad'"),
        ("k in (a,)", "'k in (a,)' at column 9", "'' is not a label value"),
        ("k in (a) x", "'k in (a) x' at column 9", "nothing may follow"),
        ("k in (a", "'k in (a' at column 6", "'(' is not closed"),
        ("!k=v", "'!k=v' at column 3", "!k takes no operator"),
        ("k notin ()", "'k notin ()' at column 10", "'' is not a label value"),
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
        ("{not json", "not valid JSON"),
        ("[1]", 'holds {"key", "operator", "values"} objects'),
        ('[{"key": "k", "operator": "~", "values": []}]', "operator of 'k' is '~'"),
        ('[{"key": "k", "operator": "in", "values": []}]', "needs a value"),
        (5, "a selector is text, an object or a list"),
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
    with pytest.raises(SelectorError, match="expected key=value"):
        parse_labels("model in (k2,k3)")
    assert "site=berlin,model=k2" in str(caught.value)
    assert "JSON" not in str(caught.value)


# Set-based selectors: generated requirements, checked against a reference
# evaluation written out of the grammar's definition.
set_values = values.filter(lambda v: v and "(" not in v and ")" not in v)
operators = st.sampled_from(["=", "!=", "in", "notin", "exists", "!"])


@st.composite
def requirements(draw, keys=keys, values=set_values):
    op = draw(operators)
    vals: tuple[str, ...]
    if op in ("=", "!="):
        vals = (draw(values),)
    elif op in ("in", "notin"):
        vals = tuple(draw(st.lists(values, min_size=1, max_size=4, unique=True)))
    else:
        vals = ()
    return Requirement(draw(keys), op, vals)


def reference(requirement, labels):
    """The meaning of each operator, as the grammar (docs/api.md) defines it."""
    has = requirement.key in labels
    value = labels.get(requirement.key)
    op, values = requirement.operator, requirement.values
    if op in ("=", "in"):
        return has and value in values
    if op in ("!=", "notin"):
        return not has or value not in values
    return has if op == "exists" else not has


small_keys = st.sampled_from(["model", "site", "k8s.io/arch", "ring"])
small_values = st.sampled_from(["k2", "k3", "a", 'q"uo\\te', "x(y"])


@given(
    st.lists(
        requirements(small_keys, small_values.filter(lambda v: "(" not in v)),
        max_size=5,
    ),
    st.dictionaries(small_keys, small_values),
)
def test_matches_is_the_reference_evaluation(reqs, labels):
    selector = Selector(tuple(reqs))
    assert selector.matches(labels) == all(reference(r, labels) for r in reqs)


@given(st.lists(requirements(), max_size=6))
def test_set_based_text_and_json_round_trip(reqs):
    equalities = [(r.key, r.values[0]) for r in reqs if r.operator == "="]
    if len(dict(equalities)) < len(set(equalities)):
        # Two different equalities on one key are refused.
        with pytest.raises(SelectorError, match="is given twice"):
            parse_selector(Selector(tuple(reqs)).render())
        return
    selector = parse_selector(Selector(tuple(reqs)).render())
    assert parse_selector(selector.render()) == selector
    assert Selector.from_json(selector.to_json()) == selector
    assert parse_selector(json.dumps(selector.to_json())) == selector


def test_every_operator_parses_with_spacing_and_newlines():
    selector = parse_selector(
        " model in ( k2 , k3 ),site!=lab\n!test , ring notin (canary),region==eu,gpu"
    )
    assert selector.render() == (
        "model in (k2,k3),site!=lab,!test,ring notin (canary),region=eu,gpu"
    )
    fleet = {
        "a": {"model": "k2", "ring": "main", "region": "eu", "gpu": "1"},
        "b": {"model": "k3", "region": "eu", "gpu": "0", "test": "1"},
        "c": {"model": "k2", "ring": "canary", "region": "eu", "gpu": "1"},
        "d": {"model": "k2", "site": "lab", "region": "eu", "gpu": "1"},
        "e": {"model": "k2", "region": "eu"},
    }
    assert [n for n, labels in fleet.items() if selector.matches(labels)] == ["a"]


def test_equality_selectors_keep_the_object_form():
    assert parse_selector("a=1,b in (2)").to_json() == [
        {"key": "a", "operator": "=", "values": ["1"]},
        {"key": "b", "operator": "in", "values": ["2"]},
    ]
    assert parse_selector("a=1\nb=2").to_json() == {"a": "1", "b": "2"}
    assert coerce_selector("a in (x, y)") == [
        {"key": "a", "operator": "in", "values": ["x", "y"]}
    ]
