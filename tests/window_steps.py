"""Steps and pipelines for tests/pipeline/test_window.py: thread steps held on an event the test (or
the body itself) sets, and bodies that count the step calls that have returned."""
from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path

from ending_steps import fail_soon
from q2pconf import parallel_pipeline, step

GATE = threading.Event()  # held steps wait for it (thread steps share this process)
SAFETY = 120.0  # seconds a held step waits at most: a broken test never hangs for ever
RETURNED: list[int] = []  # step calls of the running body that have returned so far
RELEASED_BY: list[str] = []


def release(by: str) -> None:
    if not GATE.is_set():
        RELEASED_BY.append(by)
        GATE.set()


@step
def held(index: int) -> int:
    GATE.wait(timeout=SAFETY)
    return index


@step
def nap(index: int, seconds: float) -> int:
    time.sleep(seconds)
    return index


@parallel_pipeline
def counted(count: int) -> list[int]:
    """`count` held steps; RETURNED grows as each call returns."""
    futures = []
    for index in range(count):
        futures.append(held(index))
        RETURNED.append(index)
    return futures


@parallel_pipeline
def failing_while_full(count: int) -> list[object]:
    """A step that fails soon, then `count` held steps."""
    first = fail_soon(0.5)
    return [first] + [held(index) for index in range(count)]


@parallel_pipeline
def from_a_thread(count: int, seen: list[int]) -> list[int]:
    """A thread of the body's own (in the body's context, as a user passes it on) calls
    `count` held steps; the body waits for it (bounded), notes how many calls returned, then
    lets the steps go."""
    futures: list[object] = []

    def submit() -> None:
        for index in range(count):
            futures.append(held(index))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(submit,))
    thread.start()
    thread.join(30)
    seen.append(len(futures))
    release("body")
    thread.join(30)
    return futures  # type: ignore[return-value]


@step
def runs_a_pipeline(count: int) -> list[int]:
    """A step whose own code calls a pipeline: that body runs in this step, never waiting
    for room or for a pool thread."""
    return inner(count)


@parallel_pipeline
def inner(count: int) -> list[int]:
    """`count` held steps, then the body itself lets them go (when run in parallel)."""
    futures = [held(index) for index in range(count)]
    release("inner body")
    return futures


@parallel_pipeline
def outer(count: int) -> int:
    return runs_a_pipeline(count)


@parallel_pipeline
def naps(count: int, seconds: float) -> list[int]:
    return [nap(index, seconds) for index in range(count)]


@parallel_pipeline
def interruptible(count: int, seconds: float, log: str) -> list[int]:
    """Steps of `seconds` each; `log` has the number of calls returned so far."""
    futures = []
    for index in range(count):
        futures.append(nap(index, seconds))
        Path(log).write_text(str(index + 1))
    return futures


@step(executor="htex")
def remote(index: int) -> int:
    return index


@parallel_pipeline
def trivial(count: int, where: str) -> list[int]:
    """`count` trivial steps on the thread pool ("default") or the HTEX ("htex")."""
    return [(remote if where == "htex" else nap)(index, *(() if where == "htex" else (0,)))
            for index in range(count)]


@step
def plus(value: int, index: int) -> int:
    return value + index


@parallel_pipeline
def fan_out_behind_one(count: int) -> list[int]:
    """`count` steps waiting for one held step's result, then an independent step: only
    what the executors hold counts, so the body reaches the last call while all wait."""
    first = held(0)
    RETURNED.append(0)
    futures = [first]
    for index in range(count):
        futures.append(plus(first, index))
        RETURNED.append(index + 1)
    futures.append(nap(-1, 0))
    RETURNED.append(count + 1)
    return futures


BODY_WENT_ON = threading.Event()  # set by the body after its later calls


@step
def waits_for_the_body(seconds: float) -> bool:
    """Whether the body went on within `seconds` (a step that breaks the window's rule)."""
    return BODY_WENT_ON.wait(timeout=seconds)


@parallel_pipeline
def breaks_the_rule(count: int, seconds: float) -> list[object]:
    """A step waiting for what the body does `count` step calls later."""
    first = waits_for_the_body(seconds)
    later = [nap(index, 0) for index in range(count)]
    BODY_WENT_ON.set()
    return [first, *later]
