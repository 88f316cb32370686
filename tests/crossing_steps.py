"""Steps whose exception or return value cannot travel back from a worker as itself, for
tests/pipeline/test_crossing.py (importable by HTEX workers through PYTHONPATH)."""
from __future__ import annotations

import os
import socket
import sys

from q2pconf import parallel_pipeline, step


class ScoreError(Exception):
    """The usual user exception: its __init__ takes other arguments than its args."""

    def __init__(self, sample: str, score: float) -> None:
        super().__init__(f"sample {sample} scored {score}")
        self.sample, self.score = sample, score


class Holding(Exception):
    """An exception with an attribute no serializer can send (a generator)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.pending = (n for n in range(3))


class Pair:
    """An object whose __reduce__ loses an argument: it pickles, and cannot be rebuilt."""

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b

    def __reduce__(self) -> tuple[object, ...]:
        return (Pair, (self.a,))


def _raise_score() -> None:
    raise ScoreError("s1", 0.25)


def _raise_holding() -> None:
    raise Holding("holds a generator")


def _raise_interrupt() -> None:
    raise KeyboardInterrupt("pressed inside a step")


def _numbers():  # type: ignore[no-untyped-def]
    yield 1


CASES = {
    "score": _raise_score,
    "holding": _raise_holding,
    "exit": lambda: sys.exit(3),
    "interrupt": _raise_interrupt,
    "generator": _numbers,
    "socket": lambda: socket.socket(),
    "pair": lambda: Pair(1, 2),
    "lambda": lambda: (lambda x: x + 1),
    "file": lambda: open(os.devnull),  # dill sends an open file by name: it is opened again
}


@step(executor="htex")
def on_htex(case: str) -> object:
    return CASES[case]()


@step
def on_threads(case: str) -> object:
    return CASES[case]()


@parallel_pipeline
def run(case: str, where: str) -> object:
    return (on_htex if where == "htex" else on_threads)(case)
