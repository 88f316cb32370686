"""What one step attempt used, measured where it runs, and how that travels back.

The Runner calls `measured` around a step when the pipeline traces. In the submitting process
(a thread step) the usage goes straight into `ARRIVED`; in a worker process it rides back
inside the pickled result (`Measured`) and lands in `ARRIVED` when the submitting side
unpickles it. A failed attempt's usage rides on its exception (`USAGE_ATTR`) either way.
Only the standard library: workers import this module before every traced step.
"""
from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

TRACE_KEY = "_q2pconf_trace"  # the keyword carrying a call's key (an int) to the Runner
# The process whose pipelines trace: a step running in it is a thread step. A worker process
# (a fresh interpreter, or a fork of this one) has another pid. An int key, not a tuple:
# Parsl's dependency resolver walks into tuples on every call.
HOME_PID: int | None = None
USAGE_ATTR = "_q2pconf_usage"  # where a failed attempt's usage rides on its exception
ARRIVED: dict[int, Usage] = {}  # call key -> usage of its successful attempt (submit side)
HOST = socket.gethostname()
JOB_VARS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")


class Usage(NamedTuple):
    """One attempt, seen from inside its process. `scope` says whose peak `peak_kib` is:
    "step" (a worker process, high-water mark reset before the step) or "process" (a thread
    step: the peak of the whole submitting process so far)."""

    started: float  # seconds since the epoch
    wall: float
    cpu: float
    peak_kib: int | None
    scope: str
    host: str
    pid: int
    worker: str
    job: str | None


class Measured:
    """A worker's result and its usage; unpickles as the bare result (see `_arrive`)."""

    __slots__ = ("key", "value", "usage")

    def __init__(self, key: int, value: Any, usage: Usage) -> None:
        self.key, self.value, self.usage = key, value, usage

    def __reduce__(self) -> tuple[Any, ...]:
        return (_arrive, (self.key, self.value, tuple(self.usage)))


def _arrive(key: int, value: Any, usage: tuple[Any, ...]) -> Any:
    ARRIVED[key] = Usage(*usage)
    return value


def measured(key: int, func: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
    """Call `func`, measuring it; `key` names the call in the submitting process."""
    at_home = HOME_PID == os.getpid()
    clock = time.thread_time if at_home else _process_cpu
    if not at_home:
        _reset_peak()
    began, cpu = time.perf_counter(), clock()
    try:
        value = func(*args, **kwargs)
    except BaseException as error:
        usage = _usage(at_home, time.perf_counter() - began, clock() - cpu)
        try:  # pickled with the exception's __dict__ on the way back from a worker
            setattr(error, USAGE_ATTR, usage)
        except Exception:  # an exception class without a __dict__: the usage is lost
            pass
        raise
    usage = _usage(at_home, time.perf_counter() - began, clock() - cpu)
    if at_home:
        ARRIVED[key] = usage
        return value
    return Measured(key, value, usage)


def _usage(at_home: bool, wall: float, cpu: float) -> Usage:
    # Anchored at the end: a process preempted here reports a later end, never one after the
    # result reached the pipeline.
    started = time.time() - wall
    if at_home:  # ru_maxrss: the process's lifetime peak (KiB on Linux); a syscall, no file
        peak: int | None = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return Usage(started, wall, cpu, peak, "process", HOST, os.getpid(),
                     threading.current_thread().name, _job())
    peak = _high_water()
    scope = "step" if peak is not None and _RESETTABLE else "process"
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rank = os.environ.get("PARSL_WORKER_RANK")
    worker = f"worker-{rank}" if rank is not None else threading.current_thread().name
    return Usage(started, wall, cpu, peak, scope, HOST, os.getpid(), worker, _job())


def _process_cpu() -> float:
    """CPU seconds of this process and of the children it waited for (tools a step runs)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


_RESETTABLE = True  # False once writing clear_refs failed: peaks are then the process's


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    global _RESETTABLE
    if not _RESETTABLE:
        return
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        _RESETTABLE = False


def _high_water() -> int | None:
    """VmHWM (KiB) from /proc/self/status, or None where there is no such file."""
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


_JOB: list[str | None] = []  # this process's batch job id, looked up once


def _job() -> str | None:
    if not _JOB:
        _JOB.append(next((os.environ[name] for name in JOB_VARS if os.environ.get(name)), None))
    return _JOB[0]
