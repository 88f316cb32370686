"""Arguments a resumed step can be recognised by. Parsl's memoizer hashes str, int, float,
None and plain lists, tuples and dicts of them, and refuses a step with any other argument.
q2pconf adds, through Parsl's documented extension point (`id_for_memo.register`):

- sets, frozensets (their members in a stable order) and bytes;
- named tuples, dict subclasses (OrderedDict, defaultdict, Counter, your own) and dataclass
  instances, keyed by their content (items in order, fields by name) and their type: its
  module, name and fingerprint (its methods and class attributes, as `q2pconf.pipeline._fingerprint`
  covers a step's code), so two types holding equal values never share a key, and editing the
  type reruns the step. A defaultdict's default_factory counts too.

An object with state beyond that content (attributes set on a dict subclass or named tuple
instance, a dataclass attribute that is not a field) is still refused, as is any other kind:
the step fails with Parsl's "unknown type for memoization"."""
from __future__ import annotations

import dataclasses
import functools
import pickle
from collections import defaultdict
from types import BuiltinFunctionType, FunctionType
from typing import Any

_REGISTERED = False


def register() -> None:
    """Teach Parsl's memoizer the extra kinds (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from parsl.dataflow.memoization import id_for_memo

    parsl_own = {kind: id_for_memo.dispatch(kind) for kind in (tuple, dict)}

    @id_for_memo.register(set)
    @id_for_memo.register(frozenset)
    def _unordered(value: Any, output_ref: bool = False) -> bytes:
        # iteration order varies between runs (hash randomisation): sort the members' ids
        members = sorted(id_for_memo(item, output_ref=output_ref) for item in value)
        return pickle.dumps((type(value).__name__, members))

    @id_for_memo.register(bytes)
    def _raw(value: bytes, output_ref: bool = False) -> bytes:
        return pickle.dumps(("bytes", value))

    @id_for_memo.register(tuple)
    @id_for_memo.register(dict)
    @id_for_memo.register(object)
    def _typed(value: Any, output_ref: bool = False) -> bytes:
        if type(value) in (tuple, dict):  # Parsl's own ids, unchanged (old checkpoints hold)
            return parsl_own[type(value)](value, output_ref=output_ref)
        content = _content(value)
        if content is None:
            raise ValueError(f"unknown type for memoization: {type(value)} (q2pconf knows named "
                             "tuples, dict subclasses and dataclasses holding nothing but their "
                             "fields or items). Fix: pass plain data or a dataclass of what the "
                             "step depends on (a method step's instance too: make its class a "
                             "dataclass), or run this pipeline without resume")
        ids = [(id_for_memo(name), id_for_memo(item, output_ref=output_ref))
               for name, item in content]
        return pickle.dumps(("typed", type_key(type(value)), _factory(value), ids))

    _REGISTERED = True


def _content(value: Any) -> list[tuple[Any, Any]] | None:
    """What determines `value` besides its type, as (name, item) pairs: a named tuple's
    fields, a dict subclass's items in their order (an OrderedDict's order is part of it),
    a dataclass's fields. None for anything else, or holding more."""
    kind = type(value)
    if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        return None if _more_state(value, ()) else list(zip(kind._fields, value))
    if isinstance(value, dict):
        return None if _more_state(value, ()) else list(value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [field.name for field in dataclasses.fields(value)]
        return None if _more_state(value, names) else [(n, getattr(value, n)) for n in names]
    return None


def _more_state(value: Any, allowed: Any) -> bool:
    """`value` holds attributes other than `allowed` (in its __dict__ or __slots__)."""
    extra = set(getattr(value, "__dict__", {})) - set(allowed)
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names = (slots,) if isinstance(slots, str) else slots
        extra |= {name for name in names if hasattr(value, name)} - set(allowed)
    return bool(extra)


def _factory(value: Any) -> Any:
    """A defaultdict's default_factory, as a key: it decides what a missing item becomes."""
    if not isinstance(value, defaultdict) or value.default_factory is None:
        return None
    factory = value.default_factory
    if not isinstance(factory, (type, FunctionType, BuiltinFunctionType)):
        raise ValueError(f"unknown type for memoization: {type(value)} whose default_factory "
                         f"{factory!r} is neither a function nor a class")
    return type_key(factory)


@functools.lru_cache(maxsize=None)
def type_key(definition: Any) -> tuple[str, str, str]:
    """A type (or function) as a key: module, qualified name and fingerprint (its methods
    and class attributes, or its code), so an edited definition is a new key."""
    from q2pconf.pipeline import _fingerprint as fingerprint

    return (getattr(definition, "__module__", "") or "", definition.__qualname__,
            fingerprint.of_definition(definition))
