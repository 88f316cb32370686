"""The lookup's records (Settings, Located, Looked) are typing.NamedTuple classes: tuples with
named fields, defaults, their own methods, pickled and compared as tuples, and immutable."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import get_type_hints

import pytest

from q2pconf._catalog.kinds import Param
from q2pconf.config import Settings, from_dict
from q2pconf.config._find import Located, Looked


def test_a_record_is_a_namedtuple_with_its_defaults_and_methods():
    found = Located(Path("/x.toml"), "explicit")
    assert found == (Path("/x.toml"), "explicit", ()) and found.trail == ()
    assert Located._fields == ("path", "source", "trail")
    assert Located._field_defaults == {"trail": ()}
    assert repr(Looked("user", None, "no file")) == (
        "Looked(source='user', path=None, note='no file')")
    assert Located.__module__ == "q2pconf.config._find" and Located.__qualname__ == "Located"
    assert pickle.loads(pickle.dumps(found)) == found
    with pytest.raises(AttributeError):
        found.path = None  # immutable, no __dict__


def test_the_public_settings_are_records():
    assert Settings._fields == ("path", "source", "plan", "trail")
    assert Settings.__doc__.startswith("A checked config")
    settings = from_dict({"parsl": {}})
    assert "default" in settings.labels  # the body's properties work
    assert settings._replace(source="user").source == "user"
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_a_catalog_param_is_a_record_marshal_can_cache_as_a_tuple():
    param = Param("label", frozenset({"str"}))
    assert param == ("label", frozenset({"str"}), (), False, "", None)
    assert Param._make(tuple(param)) == param
    assert set(get_type_hints(Param)) == set(Param._fields)
