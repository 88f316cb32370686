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
import threading
from concurrent.futures import CancelledError, Future
from typing import Any

from q2pconf._base.futures import StepFuture

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


def awaited(value: Any) -> list[Future[Any]]:
    """What a step must still wait for in `value`: its unfinished or failed futures (Parsl fails
    the step with a DependencyError), as one future when there are several. Parsl adds a
    done-callback to each future it is given, and each completion queues a launch attempt that
    counts all of them again: a fan-in of 50,000 finished steps cost ~2 KiB of peak memory a
    step, and one of unfinished steps time quadratic in their number. A future that already
    succeeded is left out; the step's argument still holds it, and `unwrap` takes its result."""
    waits = [future for future in gather(value) if not _succeeded(future)]
    return waits if len(waits) < 2 else [_all_done(waits)]


def _succeeded(future: Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


class AllDone(StepFuture):
    """Done when every one of `awaits` is (the trace reads them while it is not)."""

    __slots__ = ("awaits",)

    def __init__(self, awaits: list[Future[Any]]) -> None:
        super().__init__()
        self.awaits = awaits


def _all_done(futures: list[Future[Any]]) -> Future[Any]:
    """A future done when every one of `futures` is: failed like the first of them that failed
    (the trace reads it), else with None."""
    gate = AllDone(futures)
    left = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            left[0] -= 1
            if left[0]:
                return
        failed = [f for f in futures if not _succeeded(f)]
        if failed:
            gate.set_exception(failed[0].exception() if not failed[0].cancelled()
                               else CancelledError())
        else:
            gate.set_result(None)

    for future in futures:  # one already done calls back at once
        future.add_done_callback(one_done)
    return gate


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

    return DependencyResolver(traverse_to_gather=awaited, traverse_to_unwrap=unwrap)
