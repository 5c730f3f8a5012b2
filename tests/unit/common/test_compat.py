"""Artifact compatibility: declared as an object or as selector text limited to
``=`` and ``in``; a device is compatible when every declared key is among its
properties with one of the values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xdp47_common.compat import coerce_compatible, is_compatible
from xdp47_common.selectors import SelectorError

keys = st.sampled_from(["arch", "device_type", "board"])
values = st.sampled_from(["arm64", "x86_64", "kiosk-k2", "kiosk-k3"])


def test_text_and_object_forms_are_the_same_declaration():
    text = "arch=arm64, device_type in (kiosk-k2,kiosk-k3)"
    assert coerce_compatible(text) == {
        "arch": ["arm64"],
        "device_type": ["kiosk-k2", "kiosk-k3"],
    }
    assert coerce_compatible(coerce_compatible(text)) == coerce_compatible(text)
    assert coerce_compatible('{"arch": "arm64"}') == {"arch": ["arm64"]}
    assert coerce_compatible("") == {}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("arch!=x86", "only key=value and key in"),
        ("!arch", "only key=value and key in"),
        ("arch=arm64,arch in (x86)", "'arch' is given twice"),
        ({"arch": []}, "is a list of 1 to"),
        ({"bad key": ["x"]}, "is not a label key"),
        ([1], "compatible is an object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_bad_declarations_say_what_is_wrong(value, match):
    with pytest.raises(SelectorError, match=match):
        coerce_compatible(value)


@given(
    st.dictionaries(keys, st.lists(values, min_size=1, max_size=3, unique=True)),
    st.dictionaries(keys, values),
)
def test_compatible_is_every_key_among_the_properties(declared, properties):
    expected = all(properties.get(k) in vs for k, vs in declared.items())
    assert is_compatible(declared, properties) == expected


def test_nothing_declared_runs_anywhere():
    assert is_compatible({}, {})
    assert is_compatible(None, {"arch": "x86_64"})
    assert not is_compatible({"arch": ["arm64"]}, {})
