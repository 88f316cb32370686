"""Where futures are followed: one rule for a step's arguments and a pipeline's result.

A future is found, and replaced by its result, anywhere inside lists, tuples (named tuples
keep their type), sets, frozensets and dicts (keys and values; dict subclasses such as
OrderedDict and defaultdict keep their type), nested to any depth. Futures inside other
objects (dataclasses, your own classes) are not looked for: the step would receive the future
itself. Parsl's own DEEP_DEPENDENCY_RESOLVER misses frozensets and rebuilds a named tuple
from one argument (a TypeError); q2pconf gives Parsl this resolver instead (`resolver()`), and
uses the same functions for serial runs and for the value a pipeline returns.
"""
from __future__ import annotations

import copy
from concurrent.futures import Future
from typing import Any

SEQUENCES = (list, tuple, set, frozenset)


def gather(value: Any) -> list[Future[Any]]:
    """Every future inside `value` (Parsl waits for them before the step runs)."""
    if isinstance(value, Future):
        return [value]
    if isinstance(value, dict):
        return [found for pair in value.items() for item in pair for found in gather(item)]
    if isinstance(value, SEQUENCES):
        return [found for item in value for found in gather(item)]
    return []


def unwrap(value: Any) -> Any:
    """`value` with every future inside replaced by its result (waiting for it)."""
    if isinstance(value, Future):
        return value.result()
    if isinstance(value, dict):
        pairs = [(unwrap(key), unwrap(item)) for key, item in value.items()]
        if type(value) is dict:
            return dict(pairs)
        rebuilt = copy.copy(value)  # keeps a defaultdict's factory, an OrderedDict's type
        rebuilt.clear()
        rebuilt.update(pairs)
        return rebuilt
    if isinstance(value, tuple):
        items = [unwrap(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, SEQUENCES):
        return type(value)(unwrap(item) for item in value)
    return value


def resolver() -> Any:
    """This module's rule as a Parsl DependencyResolver."""
    from parsl.dataflow.dependency_resolvers import DependencyResolver

    return DependencyResolver(traverse_to_gather=gather, traverse_to_unwrap=unwrap)
