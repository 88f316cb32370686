"""What one step attempt used, measured where it runs, and how that travels back.

The Runner calls `measured` around a step when the pipeline traces. In the submitting process
(a thread step) the usage goes straight into `ARRIVED`; in a worker process it rides back
inside the pickled result (`Measured`) and lands in `ARRIVED` when the submitting side
unpickles it. A failed attempt's usage rides on its exception (`USAGE_ATTR`) either way.
Only the standard library: workers import this module before every traced step.
"""
from __future__ import annotations

import os
import pickle
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

    __slots__ = ("value", "packed")

    def __init__(self, key: int, value: Any, usage: Usage) -> None:
        # The key and usage travel as one bytes object: Parsl pickles results with dill, a
        # pure-Python pickler paying ~1 us for each object, where the C pickler packs these
        # ten in ~1 us (the submitting side unpickles all of a worker's result anyway).
        self.value, self.packed = value, pickle.dumps((key, *usage))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_arrive, (self.value, self.packed))


def _arrive(value: Any, packed: bytes) -> Any:
    key, *usage = pickle.loads(packed)
    ARRIVED[key] = Usage(*usage)
    return value


def measured(key: int, func: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
    """Call `func`, measuring it; `key` names the call in the submitting process."""
    at_home = HOME_PID == os.getpid()
    clock = time.thread_time if at_home else _process_cpu
    if not at_home:
        _own().reset_peak()
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
    own = _own()
    peak = own.high_water()
    scope = "step" if peak is not None and own.clear is not None else "process"
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker = own.worker or threading.current_thread().name
    return Usage(started, wall, cpu, peak, scope, HOST, own.pid, worker, _job())


def _process_cpu() -> float:
    """CPU seconds of this process and of the children it waited for (tools a step runs)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class _Own:
    """This worker process's name and its /proc files, opened once: each open, read and close
    of a /proc file costs more than the trivial step it measures. Held per process id (a
    process forked from this one has files and a name of its own)."""

    __slots__ = ("pid", "worker", "clear", "status")

    def __init__(self) -> None:
        self.pid = os.getpid()
        rank = os.environ.get("PARSL_WORKER_RANK")
        self.worker = None if rank is None else f"worker-{rank}"
        self.clear = _open("/proc/self/clear_refs", os.O_WRONLY)  # None: peaks are the process's
        self.status = _open("/proc/self/status", os.O_RDONLY)

    def reset_peak(self) -> None:
        """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
        if self.clear is not None:
            try:
                os.write(self.clear, b"5")
            except OSError:
                self.clear = None

    def high_water(self) -> int | None:
        """VmHWM (KiB) from /proc/self/status, or None where there is no such file. Read
        again from its start, the file is made again: the value is the current one."""
        if self.status is None:
            return None
        try:
            text = os.pread(self.status, 8192, 0)
            at = text.index(b"VmHWM:") + 6
            return int(text[at:text.index(b"kB", at)])
        except (OSError, ValueError):
            return None


def _open(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


_OWN: list[_Own] = []  # this process's, once a step ran in it


def _own() -> _Own:
    if _OWN and _OWN[0].pid == os.getpid():
        return _OWN[0]
    own = _Own()  # (a fork's inherited descriptors name its parent's files: left open)
    _OWN[:] = [own]
    return own


_JOB: list[str | None] = []  # this process's batch job id, looked up once


def _job() -> str | None:
    if not _JOB:
        _JOB.append(next((os.environ[name] for name in JOB_VARS if os.environ.get(name)), None))
    return _JOB[0]
