"""Where and when each step of a pipeline run ran, kept small enough for 100,000 steps.

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

PENDING = "pending"  # a step that has not finished yet (a run that ended settles them all)
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
