"""Steps that fail the hard way on an HTEX worker, for tests/supervise/test_faults.py (importable by
workers through PYTHONPATH)."""
from __future__ import annotations

import ctypes
import os
import time

from flags import write_flag
from q2pconf import parallel_pipeline, step


def _mark(flag: str) -> None:
    """Say, in `flag`, when and where the step is about to misbehave."""
    write_flag(flag, f"{time.time()} {os.getpid()}")


@step(executor="htex")
def exit_hard(flag: str) -> None:
    _mark(flag)
    os._exit(3)


@step(executor="htex")
def segfault(flag: str) -> None:
    _mark(flag)
    ctypes.string_at(0)


@step(executor="htex", walltime=1)
def spin(flag: str) -> None:
    _mark(flag)
    while True:
        pass


@step(executor="htex")
def nap_on_htex(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@step
def nap_on_threads(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@parallel_pipeline
def dies(flag: str) -> object:
    return exit_hard(flag)


@parallel_pipeline
def crashes(flag: str) -> object:
    return segfault(flag)


@parallel_pipeline
def hangs(flag: str) -> object:
    return spin(flag)


FAULTS = {"exit": dies, "segfault": crashes, "walltime": hangs}


@parallel_pipeline
def htex_only(seconds: float) -> list[object]:
    """Short steps first (so some finish), then long ones the signal interrupts."""
    quick = [nap_on_htex(0.05) for _ in range(4)]
    return quick + [nap_on_htex(seconds) for _ in range(2)]


@parallel_pipeline
def mixed(seconds: float) -> list[object]:
    return [nap_on_htex(0.05), nap_on_threads(0.05), nap_on_htex(seconds),
            nap_on_threads(seconds)]
