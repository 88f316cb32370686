"""q2pconf.jsontext writes what json.dumps(value, indent=2) writes, byte for byte."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from q2pconf.jsontext import dumps

# Any text, lone surrogates (a path that is not UTF-8) and astral characters included.
TEXT = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF,
                             categories=None))
VALUES = st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                      lambda inner: st.lists(inner, max_size=4)
                      | st.tuples(inner, inner)
                      | st.dictionaries(TEXT, inner, max_size=4), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_the_same_text_as_json(value):
    assert dumps(value) == json.dumps(value, indent=2)


def test_escapes_and_the_shape_of_info_output():
    value = {"path": "/tmp/\u00e9\n\"q\"\\\x7f\x1f\ud800\U0001f600", "source": "explicit",
             "trail": [{"source": "user", "path": None, "note": "no file"}],
             "executors": ["default", "htex"], "mapping": {}, "empty": [], "flags": [True, 3]}
    assert dumps(value) == json.dumps(value, indent=2)


@pytest.mark.parametrize("value", [1.5, {1: "a"}, {"a": object()}, b"bytes", {None: 1}])
def test_other_values_are_refused_not_written_differently(value):
    with pytest.raises(TypeError):
        dumps(value)
