"""Steps that call steps and pipelines, on threads and on the HTEX (test_nesting.py).

Every step here checks what it gets from a call and says so in its result, so a Future where a
value belongs fails the test by value, not by a later type error.
"""
from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Any

from q2pconf import parallel_pipeline, step

XS = [1, 2, 3]


def plain(value: Any) -> Any:
    """`value`, which a step call inside a step returns: never a future."""
    if isinstance(value, Future) or (isinstance(value, tuple)
                                     and any(isinstance(v, Future) for v in value)):
        raise TypeError(f"a step call inside a step gave {value!r}, not a value")
    return value


@step
def double(x: int) -> int:
    return 2 * x


@step(executor="htex")
def double_far(x: int) -> int:
    return 2 * x


@step(outputs=2)
def low_high(values: list[int]) -> tuple[int, int]:
    return min(values), max(values)


def _calls_steps(x: int) -> int:
    low, high = plain(low_high([x, 10 * x]))
    return plain(double(x)) + plain(double_far(x)) + low + high


@step
def calls_step(x: int) -> tuple[int, int]:
    return _calls_steps(x), os.getpid()


@step(executor="htex")
def calls_step_far(x: int) -> tuple[int, int]:
    return _calls_steps(x), os.getpid()


@step
def calls_calls_step(x: int) -> int:
    """A step calling a step calling steps: plain calls all the way down."""
    value, _ = plain(calls_step(x))
    return value


@step
def add_all(values: list[int]) -> int:
    return sum(values)


@parallel_pipeline
def inner(xs: list[int]) -> int:
    """A pipeline body as any other: its step calls give futures, whatever runs it."""
    first = double(xs[0])
    if not isinstance(first, Future):
        raise TypeError(f"a step call in a pipeline body gave {first!r}, not a future")
    doubled = [first] + [double(x) for x in xs[1:]] + [double_far(x) for x in xs]
    return add_all(doubled)


@parallel_pipeline
def middle(xs: list[int]) -> int:
    """A pipeline that calls a pipeline in its body."""
    return add_all([inner(xs), inner(xs)])


@step
def calls_pipeline(xs: list[int]) -> tuple[int, int]:
    return plain(inner(xs)), os.getpid()


@step(executor="htex")
def calls_pipeline_far(xs: list[int]) -> tuple[int, int]:
    return plain(inner(xs)), os.getpid()


@step
def calls_nested(xs: list[int]) -> int:
    return plain(middle(xs))


@step(executor="htex")
def calls_nested_far(xs: list[int]) -> int:
    return plain(middle(xs))


@step
def calls_serial(xs: list[int]) -> int:
    """`run.serial` asked for inside a step is run.serial, as anywhere."""
    return plain(inner.serial(xs))


@parallel_pipeline
def outer(xs: list[int]) -> dict[str, Any]:
    return {"step in thread step": calls_step(3), "step in htex step": calls_step_far(3),
            "step in step in step": calls_calls_step(3),
            "pipeline in thread step": calls_pipeline(xs),
            "pipeline in htex step": calls_pipeline_far(xs),
            "nested pipelines in thread step": calls_nested(xs),
            "nested pipelines in htex step": calls_nested_far(xs),
            "serial in thread step": calls_serial(xs),
            "nested pipelines in the body": middle(xs)}


OUTER_STEPS = ["calls_step", "calls_step_far", "calls_calls_step", "calls_pipeline",
               "calls_pipeline_far", "calls_nested", "calls_nested_far", "calls_serial"]


def report(serially: bool = False) -> dict[str, Any]:
    """What test_nesting checks of one run of `outer`: its result, its steps' history, what
    the inner pipelines' history holds, and the program's pid."""
    result = outer.serial(XS) if serially else outer(XS)
    return {"result": result, "pid": os.getpid(),
            "history": sorted((r.name, r.state) for r in outer.history),
            "inner history": [r.name for r in inner.history] + [r.name for r in middle.history],
            "traced": _traced(outer.trace_path)}


def _traced(path: Any) -> list[str] | None:
    """The step column of a run's trace (None: no trace, as in a serial run)."""
    if path is None:
        return None
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    column = lines[0].index("step")
    return [fields[column] for fields in lines[1:]]


@step
def fail(message: str) -> None:
    raise KeyError(message)


@parallel_pipeline
def failing(message: str) -> Any:
    return add_all([double(1), fail(message)])


@step
def calls_failing(message: str) -> Any:
    return failing(message)


@parallel_pipeline
def outer_failing(message: str) -> Any:
    return calls_failing(message)


@step(executor="htex")
def where(x: int) -> tuple[int, int]:
    return 2 * x, os.getpid()


@parallel_pipeline
def far_inner(xs: list[int]) -> list[Any]:
    return [where(x) for x in xs]


@step(executor="htex")
def pipeline_from_own_thread(xs: list[int]) -> tuple[list[Any], int]:
    """An HTEX step that runs a pipeline in a thread of its own (no step runs there)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(far_inner, xs).result(), os.getpid()


@parallel_pipeline
def outer_threaded(xs: list[int]) -> Any:
    return pipeline_from_own_thread(xs)
