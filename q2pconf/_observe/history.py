"""Where and when each step of a pipeline run ran, kept small enough for 100,000 steps; and
the one rule for a step's state (`status_of`, `unfinished_status`), which the trace shares.

A run records each step at submission (its name and executor) and again when it finishes
(Parsl's launch and return times, its final state), into arrays: about 25 bytes a step.
`StepRecord`s are made only when the history is read.
"""
from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from q2pconf._base.nested import AllDone
from q2pconf._supervise.abandon import Abandoned

PENDING = "pending"  # a step that has not finished yet (a run that ended settles them all)
# A step attempt's status, as the trace writes it
DONE, FAILED, DEPENDENCY, CANCELLED, CACHED = ("done", "failed", "dependency_failed",
                                               "cancelled", "cached")
# One state per step: the trace's status (q2pconf._observe.trace) -> the state here, in Parsl's
# words.
STATES = {"done": "exec_done", "cached": "memo_done", "failed": "failed",
          "dependency_failed": "dep_fail", "cancelled": "cancelled"}


@dataclass(frozen=True)
class StepRecord:
    """Where and when one step of the last run ran (times from Parsl, seconds since epoch)."""

    name: str
    executor: str
    started: float | None
    finished: float | None
    state: str


class History(Sequence[StepRecord]):
    """The steps of one run, in the order they were submitted."""

    def __init__(self) -> None:
        self._words: dict[str, int] = {PENDING: 0}  # names, labels and states, numbered
        self._lock = threading.Lock()
        self._name = array("I")
        self._label = array("I")
        self._state = array("H")
        self._started = array("d")
        self._finished = array("d")

    def submitted(self, name: str, label: str) -> int:
        """Record a step about to be submitted; returns its index for `finished`."""
        with self._lock:
            self._name.append(self._word(name))
            self._label.append(self._word(label))
            self._state.append(0)
            self._started.append(math.nan)
            self._finished.append(math.nan)
            return len(self._name) - 1

    def finished(self, index: int, started: float | None, finished: float | None,
                 state: str) -> None:
        """A step's one final state: the first given (a step the run's end settled keeps
        the state its trace line has, should its future complete afterwards)."""
        with self._lock:
            if self._state[index] != 0:
                return
            self._started[index] = math.nan if started is None else started
            self._finished[index] = math.nan if finished is None else finished
            self._state[index] = self._word(state)

    def _word(self, text: str) -> int:
        return self._words.setdefault(text, len(self._words))

    def __len__(self) -> int:
        return len(self._name)

    @overload
    def __getitem__(self, index: int) -> StepRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[StepRecord]: ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        with self._lock:
            words = list(self._words)
            return StepRecord(words[self._name[index]], words[self._label[index]],
                              _seconds(self._started[index]), _seconds(self._finished[index]),
                              words[self._state[index]])

    def __iter__(self) -> Iterator[StepRecord]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"<q2pconf history of {len(self)} steps>"


def _seconds(value: float) -> float | None:
    return None if math.isnan(value) else value


def status_of(error: BaseException) -> str:
    """The status of a step attempt that ended with `error`: the trace's, and (in Parsl's words,
    q2pconf._observe.history.STATES) run.history's. A step its run abandoned, or whose queued
    thread-pool future was cancelled, is `cancelled`; one an earlier failure doomed,
    `dependency_failed`."""
    kind = type(error).__name__
    if isinstance(error, Abandoned) or kind == "CancelledError":
        return CANCELLED
    return DEPENDENCY if kind == "DependencyError" else FAILED


def unfinished_status(future: Any) -> str:
    """The status of a step still unfinished when its run ended."""
    return DEPENDENCY if _doomed(future, set()) else CANCELLED


def _doomed(future: Any, seen: set[int]) -> bool:
    """Whether a future has failed, or waits (through Parsl's `depends`) on one that did."""
    if future is None or id(future) in seen:
        return False
    seen.add(id(future))
    if future.done():
        return future.exception() is not None
    if isinstance(future, AllDone):  # several inputs of a step, followed as one
        depends = future.awaits  # (never getattr on an AppFuture: it submits a Parsl app)
    else:
        depends = (getattr(future, "task_record", None) or {}).get("depends") or ()
    return any(_doomed(dependency, seen) for dependency in depends)
