"""q2pconf.records.Record: typing.NamedTuple's class syntax, made by collections.namedtuple."""
from __future__ import annotations

import pickle

import pytest

from q2pconf.config import Settings
from q2pconf.records import Record


class Point(Record):
    """A point."""

    x: int
    y: int = 0

    @property
    def total(self) -> int:
        return self.x + self.y

    def moved(self, by: int) -> Point:
        return self._replace(x=self.x + by)


def test_a_record_is_a_namedtuple_with_the_body_s_methods():
    point = Point(1)
    assert point == (1, 0) and Point._fields == ("x", "y") and Point._field_defaults == {"y": 0}
    assert (point.total, point.moved(2), repr(point)) == (1, Point(3, 0), "Point(x=1, y=0)")
    assert Point.__doc__ == "A point." and Point.__module__ == __name__
    assert Point.__qualname__ == "Point" and Point.__annotations__ == {"x": "int", "y": "int"}
    assert pickle.loads(pickle.dumps(point)) == point
    with pytest.raises(AttributeError):
        point.z = 1  # no __dict__: slots, as a namedtuple


def test_a_field_without_a_default_after_one_with_a_default_is_refused():
    with pytest.raises(TypeError, match="without a default follows"):
        class Bad(Record):
            x: int = 0
            y: int


def test_the_public_settings_are_records():
    assert Settings._fields == ("path", "source", "plan", "trail")
    assert Settings.__doc__.startswith("A checked config")
