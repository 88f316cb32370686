"""Data sent to and from HTEX workers: C pickle wherever it means what dill means, else dill.

Parsl serializes a step's arguments and its result with dill (plain pickle first, before
Parsl 2025.12). dill's pickler is pure Python: one sample's 744 KB of reads in the example pipeline
take ~13 ms against ~1.6 ms with C pickle, in the submitting process, on its one GIL. The two
differ on one kind of object only (Parsl PR #4048): a definition in `__main__`, which pickle
sends by name (wrong on a worker, whose `__main__` is Parsl's pool) and dill by value. So C
pickle goes first and refuses any value holding a class or function of `__main__` or an
object of such a class; Parsl then tries its next method, dill, which takes those and
anything else pickle cannot.

What this writes is headed with the name of Parsl's own `PickleSerializer`, which Parsl loads
by that name to read it: the side that reads it needs nothing of q2pconf.

    >>> from q2pconf._parsl import pickling
    >>> pickling.register()                                     # doctest: +SKIP
"""
from __future__ import annotations

import io
import pickle
from types import FunctionType
from typing import Any

# "module class": how Parsl names a deserializer it loads when the header is not its own.
HEADER = b"parsl.serialize.concretes PickleSerializer"


class _OfMain(pickle.PicklingError):
    """The value holds a definition of `__main__`: dill's to send."""


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # Not called for exact ints, strs, lists, dicts and the like: those stay at C speed.
        if type(obj).__module__ == "__main__" or (
                isinstance(obj, (type, FunctionType)) and obj.__module__ == "__main__"):
            raise _OfMain(obj)
        return NotImplemented


class PickleFirst:
    """A Parsl data serializer (the shape of parsl.serialize.base.SerializerBase)."""

    identifier = HEADER

    def serialize(self, data: Any) -> bytes:
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.DEFAULT_PROTOCOL).dump(data)
        return buffer.getvalue()

    def deserialize(self, body: bytes) -> Any:
        return pickle.loads(body)


def register() -> None:
    """Put PickleFirst before Parsl's own data serializers, in this process (once). Parsl
    tries them in order, each failure passing the value to the next. Parsl's plain pickle
    (first before 2025.12, with the `__main__` fault) is superseded: it still reads what
    others write, but writes nothing."""
    from parsl.serialize import facade

    methods = facade.methods_for_data
    plain = getattr(_concretes(), "PickleSerializer", None)
    if HEADER in methods or plain is None:
        return  # already, or a Parsl that could not read it by that name
    others = dict(methods)
    if plain.identifier in others:
        facade.additional_methods_for_deserialization[plain.identifier] = \
            others.pop(plain.identifier)
    methods.clear()
    methods[HEADER] = PickleFirst()
    methods.update(others)


def _concretes() -> Any:
    from parsl.serialize import concretes

    return concretes
