"""`Record`: typing.NamedTuple's class syntax, made by collections.namedtuple.

The modules every config lookup imports define their tuples with it. `typing` costs ~2 ms to
import, and a typing.NamedTuple in a module with `from __future__ import annotations` compiles
each field's annotation text (a ForwardRef) when the class is made: together, a good share of
what `q2pconf info` may cost on top of the interpreter's start. Type checkers see
typing.NamedTuple itself (the TYPE_CHECKING branch below); at run time a class body's
annotations only name the fields, in order, and a value after one makes it a default.

    >>> class Point(Record):
    ...     x: int
    ...     y: int = 0
    >>> Point(1), Point._fields
    (Point(x=1, y=0), ('x', 'y'))
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    from collections import namedtuple

    # What a class body holds besides its fields and methods; namedtuple sets its own.
    _OWN = frozenset({"__module__", "__qualname__", "__annotations__", "__orig_bases__"})

    class _Maker(type):
        """Turns `class Name(Record): ...` into a namedtuple class with the body's methods."""

        def __new__(mcls, name, bases, namespace):
            if not bases:  # Record itself
                return super().__new__(mcls, name, bases, namespace)
            fields = list(namespace.get("__annotations__", {}))
            defaults = [namespace[field] for field in fields if field in namespace]
            if any(field not in namespace for field in fields[len(fields) - len(defaults):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            made = namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            made.__qualname__ = namespace["__qualname__"]
            made.__annotations__ = namespace.get("__annotations__", {})
            for key, value in namespace.items():
                if key in fields or key in _OWN:
                    continue
                setattr(made, key, value)
                if hasattr(value, "__set_name__"):
                    value.__set_name__(made, key)
            return made

    class Record(metaclass=_Maker):
        """Base of a typed tuple: `class Name(Record):` with annotated fields."""
