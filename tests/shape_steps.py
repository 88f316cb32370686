"""Steps of every shape a user writes (importable by HTEX workers through sys.path).

Each pipeline here returns what its body gives outside a pipeline, where every step is an
ordinary call: `pipeline.func()` is the expected answer of `pipeline()` and `pipeline.serial()`.
"""
from __future__ import annotations

import functools
import math
import operator
import os
import subprocess
import threading
import time

from q2pconf import parallel_pipeline, step


# --- Parsl's reserved argument names, and q2pconf's own hidden ones ---------------------

@step
def merge(inputs: object, outputs: object = None, stdout: object = None, stderr: object = None,
          walltime: object = None, parsl_resource_specification: object = None) -> dict:
    return {"inputs": inputs, "outputs": outputs, "stdout": stdout, "stderr": stderr,
            "walltime": walltime, "spec": parsl_resource_specification}


@step
def keywords(*args: object, **kwargs: object) -> dict:
    return {"args": args, "kwargs": kwargs}


@step(walltime=60)
def limited(walltime: object) -> object:
    """The user's `walltime` is an argument like any other, beside the step's own limit."""
    return walltime


@step
def add(a: int, b: int) -> int:
    return a + b


EVERY_NAME = {"inputs": [1, 2], "outputs": ["out.txt"], "stdout": "o.log", "stderr": "e.log",
              "walltime": 0.001, "parsl_resource_specification": {"cores": 10 ** 6},
              "_q2pconf_run": "mine", "_q2pconf_trace": 7, "_q2pconf_code": "c",
              "_q2pconf_kw_inputs": "escaped-looking"}


@parallel_pipeline
def reserved_names() -> list[object]:
    return [merge([1, 2]),
            merge([3], ["a.txt"], "out.log", "err.log", 0.001, {"cores": 10 ** 6}),
            merge(inputs=[add(1, 1)], outputs=["b.txt"], walltime=0.001),
            keywords(**EVERY_NAME), keywords([add(2, 2)], inputs=[add(3, 3)]),
            limited(0.001), limited(walltime="mine")]


@step
def count_inputs(log: str, inputs: list[int]) -> int:
    """Append to `log` each time it really runs (the resume test counts the lines)."""
    with open(log, "a") as handle:
        handle.write(f"{inputs}\n")
    return sum(inputs)


@parallel_pipeline(resume=True)
def resumed(log: str, values: list[list[int]]) -> list[object]:
    return [count_inputs(log, inputs=v) for v in values]


# --- methods ------------------------------------------------------------------------------

class Sample:
    def __init__(self, scale: int) -> None:
        self.scale = scale

    @step
    def scaled(self, x: int) -> int:
        return self.scale * x

    @step
    @classmethod
    def named(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"

    @classmethod
    @step
    def named_too(cls, x: int) -> str:
        return f"{cls.__name__}/{x}"

    @step
    @staticmethod
    def plain(x: int) -> int:
        return x + 1

    @staticmethod
    @step
    def plain_too(x: int) -> int:
        return x + 2


class Subsample(Sample):
    pass


@parallel_pipeline
def methods() -> list[object]:
    sample = Sample(3)
    return [sample.scaled(4), Sample.scaled(sample, 5), sample.scaled(sample.scaled(1)),
            Sample.named(1), sample.named(2), Subsample.named(3), Sample.named_too(4),
            Subsample(1).named_too(5), sample.plain(1), Sample.plain(2), sample.plain_too(3),
            Sample.plain_too(4)]


class Locked:
    """An instance no pickle (nor dill) can send: it holds a generator."""

    def __init__(self) -> None:
        self.pending = (n for n in range(3))

    @step
    def value(self) -> int:
        return 1


@parallel_pipeline
def locked() -> object:
    return Locked().value()


# --- library callables ---------------------------------------------------------------------

def divide(a: float, b: float) -> float:
    return a / b


class Scale:
    """A callable object."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return self.factor * x


sqrt = step(math.sqrt, executor=None)
length = step(len)
ordered = step(sorted)
power = step(operator.pow)
halve = step(functools.partial(divide, b=2))
triple = step(Scale(3))
second = step(operator.itemgetter(1))
upper = step(operator.methodcaller("upper"))
joined = step(os.path.join)


@parallel_pipeline
def library() -> list[object]:
    return [sqrt(16.0), length([1, 2, 3]), ordered([3, 1, 2], reverse=True), power(2, 5),
            halve(9), triple(add(1, 1)), second("xyz"), upper("abc"), joined("a", "b")]


# --- walltime for steps waiting in sleeps and subprocesses ---------------------------------

@step(walltime=1)
def sleeps(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@step(walltime=1)
def naps(seconds: float) -> float:
    """`sleeps` again, under another name (a name is warned about once per process)."""
    time.sleep(seconds)
    return seconds


@step(walltime=1)
def runs_tool(pidfile: str, seconds: float) -> int:
    """A shell running `sleep` in the background and waiting for it: the tool (a grandchild
    of the step's process) writes its pid to `pidfile` first."""
    return subprocess.run(["sh", "-c", f"sleep {seconds} & echo $! > {pidfile}; wait"],
                          check=True, timeout=seconds + 60).returncode  # a safety net only


@step(walltime=1)
def runs_tool_in_a_thread(pidfile: str, seconds: float) -> None:
    """`runs_tool` from a thread of the step's own (tools run side by side, say): the shell
    is a child of that thread, not of the process's main thread."""
    helper = threading.Thread(target=runs_tool.func, args=(pidfile, seconds))
    helper.start()
    helper.join()


@parallel_pipeline
def sleeping(seconds: float) -> object:
    return sleeps(seconds)


@parallel_pipeline
def napping(seconds: float) -> object:
    return naps(seconds)


@parallel_pipeline
def tool(pidfile: str, seconds: float) -> object:
    return runs_tool(pidfile, seconds)


@parallel_pipeline
def threaded_tool(pidfile: str, seconds: float) -> object:
    return runs_tool_in_a_thread(pidfile, seconds)
