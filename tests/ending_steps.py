"""Steps and pipelines for tests/test_ending.py (importable by HTEX workers through PYTHONPATH).

Each step that a test waits for writes a flag file first: its content is the worker's pid."""
from __future__ import annotations

import os
import time
from pathlib import Path

from q2pconf import parallel_pipeline, step


def _flag(path: str) -> None:
    Path(path).write_text(str(os.getpid()))


@step(executor="htex")
def hold(flag: str, seconds: float) -> int:
    _flag(flag)
    time.sleep(seconds)
    return os.getpid()


@step(executor="htex")
def fail_after(flag: str, seconds: float) -> None:
    _flag(flag)
    time.sleep(seconds)
    raise ValueError("on purpose")


@step
def queued(log: str, index: int, seconds: float) -> int:
    with open(log, "a") as handle:
        handle.write(f"{index}\n")
    time.sleep(seconds)
    return index


@step
def fail_soon(seconds: float) -> None:
    time.sleep(seconds)
    raise ValueError("on purpose")


@step
def tiny(index: int) -> int:
    return index


@parallel_pipeline
def running(flag: str, seconds: float) -> list[int]:
    """HTEX steps that run until the test signals the program."""
    return [hold(flag, seconds), hold(flag + ".2", seconds)]


@parallel_pipeline
def failing(flag: str) -> list[object]:
    """One HTEX step fails while another runs on."""
    return [hold(flag + ".other", 300), fail_after(flag, 0.3)]


@parallel_pipeline
def many_queued(log: str, count: int, fail: bool) -> list[object]:
    """`count` one-second thread steps behind a step that fails (or not): a 2-thread pool
    needs count/2 seconds for them all."""
    first = [fail_soon(0.3)] if fail else []
    return first + [queued(log, index, 1.0) for index in range(count)]


@parallel_pipeline
def flood(flag: str, count: int) -> list[object]:
    """One HTEX step, then `count` tiny thread steps submitted as fast as they can be."""
    return [hold(flag, 0.01)] + [tiny(index) for index in range(count)]


@step(executor="htex")
def after(first: int, index: int) -> int:
    return index


@parallel_pipeline
def paused(flag: str, seconds: float, count: int) -> list[int]:
    """An HTEX step the pause catches running, then `count` steps that run after it."""
    first = hold(flag, seconds)
    return [after(first, index) for index in range(count)]
