"""A step's fingerprint for `resume=True`: what its result depends on, besides its arguments.

Parsl's memoizer knows a step by name only; q2pconf adds this fingerprint to what it hashes,
so a checkpointed result is reused only while the fingerprint is unchanged. It covers:

- the step's code (instructions, constants, the names it uses, nested functions, lambdas and
  comprehensions inside it), its default and keyword-only default values, its closure;
- every name of the step's own module it reaches, transitively: functions (the same again),
  classes (their methods and class attributes, and their bases of that module), other values
  (constants, tables, objects) by value, and steps and decorated functions by what they wrap;
- of names from other modules, only the qualified name: editing an installed library does
  not change a step's fingerprint (its version changes nothing either).

Values are fingerprinted by content: plain data directly (sets in a stable order), other
objects by their pickle. An object that cannot be pickled counts by its type only, so changing
it does not invalidate a result; an object whose pickle differs from run to run (it holds a
set of strings, say) makes the step run again each time, never reuse a stale result.
"""
from __future__ import annotations

import functools
import hashlib
import pickle
from collections.abc import Callable
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType
from typing import Any

ATOMS = (bool, int, float, complex, str, bytes, type(None))
# Class attributes that never change what a method computes (or are derived from others).
CLASS_NOISE = frozenset({"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__",
                         "__annotations__", "__dataclass_fields__", "__dataclass_params__",
                         "__match_args__", "__slotnames__", "__firstlineno__",
                         "__static_attributes__"})


def of(func: FunctionType) -> str:
    """The fingerprint of `func` and what it reaches in its own module (hex, 16 digits)."""
    return _digest(func.__module__, lambda printer: printer.function(func))


def of_definition(value: Any) -> str:
    """The fingerprint of a function or class (a class: its methods and class attributes), a
    builtin, a callable object or a functools.partial (the callable it wraps, and its bound
    arguments), and what it reaches in its own module: the wrapped callable's, for a partial
    (hex, 16 digits)."""
    inner = value
    while isinstance(inner, functools.partial):
        inner = inner.func
    # a method descriptor (str.upper) has no __module__: it then follows no module's names
    return _digest(getattr(inner, "__module__", None) or "", lambda printer: printer.value(value))


def _digest(module: str, feed: Callable[[_Printer], None]) -> str:
    printer = _Printer(module)
    try:
        feed(printer)
    except Exception:  # a structure too deep, say: a fingerprint no later run matches
        import uuid

        return uuid.uuid4().hex[:16]
    return printer.digest.hexdigest()[:16]


class _Printer:
    """Feeds one digest; `module` is the step's module, whose names are followed."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.digest = hashlib.sha256()
        self.seen: dict[int, int] = {}  # id of a function or class -> its order of visit
        self.kept: list[Any] = []  # keeps visited objects alive, so their ids stay theirs

    def put(self, *parts: Any) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode()
            self.digest.update(len(data).to_bytes(8, "little") + data)

    def again(self, value: Any) -> bool:
        """True (and a back-reference fed) if `value` was visited already: cycles end."""
        if id(value) in self.seen:
            self.put("again", self.seen[id(value)])
            return True
        self.seen[id(value)] = len(self.seen)
        self.kept.append(value)
        return False

    def function(self, func: FunctionType) -> None:
        if self.again(func):
            return
        self.put("function", func.__qualname__)
        self.code(func.__code__, func.__globals__)
        self.value(func.__defaults__)
        self.value(func.__kwdefaults__)
        for cell in func.__closure__ or ():
            try:
                self.value(cell.cell_contents)
            except ValueError:  # a cell not filled yet
                self.put("empty cell")

    def code(self, code: CodeType, namespace: dict[str, Any]) -> None:
        self.put("code", code.co_code, code.co_flags, code.co_argcount,
                 code.co_posonlyargcount, code.co_kwonlyargcount, *code.co_varnames, "|",
                 *code.co_names, "|", *code.co_freevars, "|", *code.co_cellvars)
        for const in code.co_consts:
            if isinstance(const, CodeType):  # a nested function, lambda or comprehension
                self.code(const, namespace)
            else:
                self.value(const)
        for name in code.co_names:  # globals, and attribute names (not found: skipped)
            if name in namespace:
                self.put("global", name)
                self.value(namespace[name])

    def value(self, value: Any) -> None:
        if isinstance(value, ATOMS):
            self.put(type(value).__name__, repr(value))
        elif type(value) in (list, tuple, dict, set, frozenset):
            self.container(value)
        elif isinstance(value, ModuleType):
            self.put("module", value.__name__)
        elif hasattr(value, "__wrapped__") and not isinstance(value, type):
            self.put("wraps")  # a step, a pipeline, a functools.wraps decorator
            self.value(value.__wrapped__)
        elif isinstance(value, (FunctionType, type)):
            self.definition(value)
        elif isinstance(value, (staticmethod, classmethod, MethodType)):
            self.value(value.__func__)
        elif isinstance(value, property):
            self.value((value.fget, value.fset, value.fdel))
        elif isinstance(value, functools.partial):  # its pickle names its function only
            self.put("partial")
            self.value((value.func, value.args, value.keywords))
        elif isinstance(value, BuiltinFunctionType):
            self.put("builtin", getattr(value, "__module__", ""), value.__qualname__)
        else:
            self.other(value)

    def container(self, value: Any) -> None:
        self.put(type(value).__name__, len(value))
        if isinstance(value, dict):
            for key, item in value.items():
                self.value(key)
                self.value(item)
        elif isinstance(value, (set, frozenset)):  # iteration order varies between runs
            self.put(*sorted(self.apart(item) for item in value))
        else:
            for item in value:
                self.value(item)

    def definition(self, value: Any) -> None:
        """A function or class: followed when it belongs to the step's module."""
        if getattr(value, "__module__", None) != self.module:
            self.put("elsewhere", getattr(value, "__module__", ""), value.__qualname__)
        elif isinstance(value, FunctionType):
            self.function(value)
        elif not self.again(value):
            self.put("class", value.__qualname__)
            for base in value.__bases__:
                self.definition(base)
            for name, attribute in value.__dict__.items():
                if name not in CLASS_NOISE:
                    self.put(name)
                    self.value(attribute)

    def other(self, value: Any) -> None:
        """Any other object: its type (followed if it is the module's), then its pickle."""
        self.definition(type(value))
        try:
            self.put("pickle", pickle.dumps(value, protocol=4))
        except Exception:  # not picklable (a lock, an open file): counts by its type only
            self.put("unpicklable")

    def apart(self, value: Any) -> str:
        """`value`'s own fingerprint, for putting set members in a stable order."""
        printer = _Printer(self.module)
        printer.seen, printer.kept = dict(self.seen), self.kept
        printer.value(value)
        return printer.digest.hexdigest()
