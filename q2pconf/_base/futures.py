"""What a step call returns: a small Future that lets Parsl's task go once the step is done.

Parsl's AppFuture holds its task's record (arguments, time stamps, the executor's own future)
and a lock and condition of its own: several KiB a step, kept as long as the pipeline body
keeps the future (a fan-out of 100,000 steps returned as a list: hundreds of MB). A StepFuture
takes the AppFuture's outcome when it completes and drops it. It waits on one condition that
all StepFutures share, so what stays of a finished step is a few slots and its result.

It is a `concurrent.futures.Future` in every other way: Parsl follows it as a dependency,
`wait()` and `as_completed()` take it, callbacks run as usual. Sharing the condition means a
waiter can be woken by another future's completion, so `result()` and `exception()` wait in a
loop until their own future is done or the timeout has passed.

Parsl's finished task is also garbage in reference cycles (its record holds the AppFuture,
which holds the record, and on Parsl 2024.12 also through its callbacks; the executor's
future holds, through its callbacks, the record that holds it). Tasks in flight for a while
reach the oldest generation of Python's collector, which runs rarely: MBs of finished tasks
waited for it, and how many depended on its timing (peak RSS of one fan-out swung 2x between
runs). `Release` cuts those cycles as soon as Parsl is done with a task, so reference
counting frees it at once.
"""
from __future__ import annotations

import collections
import contextvars
import functools
import threading
import time
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from collections.abc import Callable
from typing import Any

_SHARED = threading.Condition()
_ENDED = (FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED)
# Told when the thread of a pipeline body waits for an unfinished step's result: `told(call,
# began, None)` as the wait begins, `told(call, began, ended)` when it is over (times from
# time.time()). A run sets it in its body's context, so no other thread tells it: the progress
# estimate (q2pconf._observe.progress) and the trace's record of the body's waits (replay).
WAITS: contextvars.ContextVar[Callable[[int, float, float | None], None] | None] = (
    contextvars.ContextVar("q2pconf_waits", default=None))


class StepFuture(Future):  # type: ignore[type-arg]
    """The future of one step's result (or of one of its declared outputs)."""

    # Future's own attributes, as slots: no per-instance dict, lock or condition.
    # `call`: the step call's number in its run's trace (-1: none), which the trace records
    # as an input of the steps given this future (a plain int: no future is kept for it)
    __slots__ = ("_condition", "_state", "_result", "_exception", "_waiters", "_done_callbacks",
                 "call")

    def __init__(self, call: int = -1) -> None:  # Future.__init__ makes a condition of its own
        self.call = call
        self._condition = _SHARED
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []

    def follow(self, source: Future) -> StepFuture:  # type: ignore[type-arg]
        """Take `source`'s outcome when it completes (holding nothing of it afterwards)."""
        source.add_done_callback(self.copy)
        return self

    def copy(self, source: Future) -> None:  # type: ignore[type-arg]
        error = source.exception()
        if error is None:
            self.set_result(source.result())
        else:
            self.set_exception(error)

    def _invoke_callbacks(self) -> None:
        """Run the callbacks once, then let them go (a plain Future keeps them while it lives:
        Parsl's and q2pconf's dependency callbacks on each future of a fan-in)."""
        super()._invoke_callbacks()  # type: ignore[misc]
        self._done_callbacks = []  # done now: a callback added later runs at once, as ever

    def cancel(self) -> bool:
        """A step already sent to Parsl cannot be taken back (Parsl cannot cancel it)."""
        return False

    def result(self, timeout: float | None = None) -> Any:
        self._await(timeout)
        return super().result(timeout=0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._await(timeout)
        return super().exception(timeout=0)

    def _await(self, timeout: float | None) -> None:
        told = WAITS.get() if self._state not in _ENDED else None
        if told is None:
            return self._wait(timeout)
        began = time.time()
        told(self.call, began, None)
        try:
            self._wait(timeout)
        finally:
            told(self.call, began, time.time())

    def _wait(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._state not in _ENDED:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                self._condition.wait(left)


class Release:
    """Cuts the reference cycles of one run's finished Parsl tasks as soon as Parsl is done
    with each (see the module's docstring)."""

    def __init__(self) -> None:
        self._later: collections.deque[Future] = collections.deque()  # type: ignore[type-arg]

    def let_go(self, task: Future) -> None:  # type: ignore[type-arg]
        """From a done-callback of Parsl's finished AppFuture `task`. Usually Parsl's callback
        on the executor's future completed it, inside that future's loop over its callbacks,
        and reads the record after: a callback appended now runs right after Parsl's. A task
        whose executor future was done before Parsl added that callback was completed inside
        Parsl's launch, whose last act is to store the future in the record: it is cut at a
        later call, once that is stored. A task that failed once keeps its cycles, for the
        collector (its record names an earlier try's future)."""
        record = getattr(task, "task_record", None) or {}
        inner = record.get("exec_fu")
        callbacks = getattr(inner, "_done_callbacks", None)
        if inner is None:
            self._later.append(task)
        elif isinstance(callbacks, list) and callbacks:
            callbacks.append(functools.partial(_cut, task))
        for _ in range(len(self._later)):
            waiting = self._later.popleft()  # atomic: callbacks run in several threads
            stored = (getattr(waiting, "task_record", None) or {}).get("exec_fu")
            if stored is None:
                self._later.append(waiting)  # Parsl's launch is still under way
            else:
                _cut(waiting, stored)


def _cut(task: Future, inner: Future) -> None:  # type: ignore[type-arg]
    """Parsl no longer reads `task`'s record (its own callback returned), and every callback
    of both futures has run (Parsl 2024.12's on `task` held the record too). The list being
    looped over goes once the loop ends; a callback added later runs at once, as ever."""
    inner._done_callbacks = []  # type: ignore[attr-defined]
    task._done_callbacks = []  # type: ignore[attr-defined]
    task.task_record = {}  # type: ignore[attr-defined]
