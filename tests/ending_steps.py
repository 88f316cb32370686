"""Steps and pipelines for tests/supervise/test_ending.py (importable by HTEX workers through
PYTHONPATH).

Each step that a test waits for writes a flag file first: its content is the worker's pid."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

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


def _leave_a_stale_poll(started: str, flag: str, after_pause: float) -> None:
    """A SIMULATION of Parsl's poll race: leave the HTEX's block statuses as a poll that read
    the blocks just before the launch and stored its answer just after leaves them (no block),
    with no poll for a while; write `flag` so that the test pauses the run; once continued,
    let Parsl poll again only `after_pause` seconds later (the poll interval of a provider)."""
    from q2pconf.pipeline import _decorators as pipeline

    executor = pipeline._ACTIVE.get().session.dfk.executors["htex"]

    def race() -> None:
        while not Path(started).exists():
            time.sleep(0.05)
        executor._last_poll_time = float("inf")  # Parsl polls no more until we say so
        executor._status = {}
        time.sleep(1.5)  # the waiting body's watchdog looks a few times
        _flag(flag)
        last = time.monotonic()
        while time.monotonic() - last < 3:  # a longer gap: the process was paused
            last = time.monotonic()
            time.sleep(0.1)
        time.sleep(after_pause)
        executor._last_poll_time = 0.0

    threading.Thread(target=race, daemon=True).start()


@parallel_pipeline
def paused_after_a_stale_poll(flag: str, seconds: float, count: int) -> list[int]:
    """`paused`, with the block statuses stale when the pause begins and just after it."""
    first = hold(flag + ".step", seconds)
    _leave_a_stale_poll(flag + ".step", flag, 2.0)
    return [after(first, index) for index in range(count)]


@parallel_pipeline
def lost_block(flag: str) -> None:
    """An HTEX step whose block never connects, and a SIMULATION of the poll race that makes
    Parsl lose count of that block: the body then fails the run."""
    hold(flag + ".never", 1.0)  # the HTEX starts and launches its block
    _lose_the_block()
    raise ValueError("on purpose, once Parsl lost count of the block")


def _lose_the_block() -> None:
    """Leave the HTEX's block statuses as a poll that read the blocks just before the launch
    and stored its answer just after leaves them (no block), and let Parsl poll no more."""
    executor = _launched()
    executor._last_poll_time = float("inf")
    executor._status = {}


@parallel_pipeline
def raced_poll(flag: str) -> None:
    """An HTEX step whose block never connects; once the block is launched, a poll of Parsl's
    own that raced with the launch (it read the blocks just before): the body prints the
    blocks launched and those Parsl counts after that poll, then fails the run."""
    hold(flag + ".never", 1.0)
    executor = _launched()
    executor.status = lambda: {}  # the provider's answer for the blocks read: none
    executor._last_poll_time = 0.0
    try:
        executor.poll_facade()  # as Parsl's poller calls it (q2pconf wraps it)
    finally:
        del executor.status
    print(sorted(executor.blocks_to_job_id), sorted(executor._status), flush=True)
    raise ValueError("on purpose, after the raced poll")


def _launched() -> Any:
    """The HTEX of the running pipeline, once it launched a block."""
    from q2pconf.pipeline import _decorators as pipeline

    dfk = pipeline._ACTIVE.get().session.dfk
    deadline = time.monotonic() + 60
    while not getattr(dfk.executors.get("htex"), "blocks_to_job_id", None):
        assert time.monotonic() < deadline, "the HTEX launched no block"
        time.sleep(0.05)
    return dfk.executors["htex"]
