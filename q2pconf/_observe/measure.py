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
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

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
    step: the peak of the whole submitting process so far). `io`: rchar, wchar, read_bytes
    and write_bytes of /proc/self/io over the attempt (this process's and its waited-for
    children's: a thread step's are the whole submitting process's), None where unreadable."""

    started: float  # seconds since the epoch
    wall: float
    cpu: float
    peak_kib: int | None
    scope: str
    host: str
    pid: int
    worker: str
    job: str | None
    io: tuple[int, int, int, int] | None = None


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
    own = _own()
    if not at_home:
        own.reset_peak()
    io = own.io_counters()
    began, cpu = time.perf_counter(), clock()
    try:
        value = func(*args, **kwargs)
    except BaseException as error:
        usage = _usage(at_home, time.perf_counter() - began, clock() - cpu, io)
        try:  # pickled with the exception's __dict__ on the way back from a worker
            setattr(error, USAGE_ATTR, usage)
        except Exception:  # an exception class without a __dict__: the usage is lost
            pass
        raise
    usage = _usage(at_home, time.perf_counter() - began, clock() - cpu, io)
    if at_home:
        ARRIVED[key] = usage
        return value
    return Measured(key, value, usage)


def _usage(at_home: bool, wall: float, cpu: float,
           io_before: tuple[int, int, int, int] | None) -> Usage:
    # Anchored at the end: a process preempted here reports a later end, never one after the
    # result reached the pipeline.
    started = time.time() - wall
    own = _own()
    io = _io_delta(io_before, own.io_counters())
    if at_home:  # the process's lifetime peak: a syscall, no file
        peak: int | None = process_peak_kib()
        return Usage(started, wall, cpu, peak, "process", HOST, os.getpid(),
                     threading.current_thread().name, _job(), io)
    peak = own.high_water()
    scope = "step" if peak is not None and own.reset else "process"
    if peak is None:
        peak = process_peak_kib()
    worker = own.worker or threading.current_thread().name
    return Usage(started, wall, cpu, peak, scope, HOST, own.pid, worker, _job(), io)


def _io_delta(before: tuple[int, int, int, int] | None,
              after: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
    if before is None or after is None:
        return None
    return (after[0] - before[0], after[1] - before[1], after[2] - before[2],
            after[3] - before[3])


def process_peak_kib(platform: str = sys.platform) -> int:
    """This process's lifetime peak RSS in KiB: getrusage's ru_maxrss, which is in KiB on
    Linux and in bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if platform == "darwin" else peak


def _process_cpu() -> float:
    """CPU seconds of this process and of the children it waited for (tools a step runs)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class _Own:
    """This worker process's name and its /proc files, kept open: opening, reading and closing
    a /proc file costs more than a trivial step. Held per process id (a process forked from
    this one has a name and files of its own)."""

    __slots__ = ("pid", "worker", "clear", "status", "io", "reset")

    def __init__(self) -> None:
        self.pid = os.getpid()
        rank = os.environ.get("PARSL_WORKER_RANK")
        self.worker = None if rank is None else f"worker-{rank}"
        self.clear = _Kept("/proc/self/clear_refs", os.O_WRONLY)
        self.status = _Kept("/proc/self/status", os.O_RDONLY)
        self.io = _Kept("/proc/self/io", os.O_RDONLY)
        self.reset = False  # whether the peak was reset before this step (else: the process's)

    def reset_peak(self) -> None:
        """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
        fd = self.clear.checked()
        self.reset = False
        if fd is not None:
            try:
                self.reset = os.write(fd, b"5") == 1
            except OSError:
                self.clear.give_up()

    def high_water(self) -> int | None:
        """VmHWM (KiB) from /proc/self/status, or None where there is no such file. Read
        again from its start, the file is made again: the value is the current one."""
        fd = self.status.checked()
        if fd is None:
            return None
        try:
            text = os.pread(fd, 8192, 0)
            at = text.index(b"VmHWM:") + 6
            return int(text[at:text.index(b"kB", at)])
        except (OSError, ValueError):
            return None

    def io_counters(self) -> tuple[int, int, int, int] | None:
        """rchar, wchar, read_bytes, write_bytes from /proc/self/io (Linux: this process's
        threads, living and ended, and the children it waited for), or None where there is
        no such file or it cannot be read (not Linux, a kernel without I/O accounting)."""
        fd = self.io.checked()
        if fd is None:
            return None
        try:
            words = os.pread(fd, 512, 0).split()
            if words[0] != b"rchar:" or words[8] != b"read_bytes:":
                return None
            return int(words[1]), int(words[3]), int(words[9]), int(words[11])
        except (OSError, ValueError, IndexError):
            return None


class _Kept:
    """A file kept open, checked before each use: a step may close descriptors it did not
    open, and the number may then name a file of its own, which must never be touched."""

    __slots__ = ("path", "flags", "fd", "identity")

    def __init__(self, path: str, flags: int) -> None:
        self.path: str | None = path
        self.flags = flags
        self.fd: int | None = None
        self.identity = (0, 0)
        self._open()

    def _open(self) -> None:
        """Open the file; where it cannot be (no /proc), never try again."""
        try:
            fd = os.open(self.path or "", self.flags)  # not inherited by processes a step starts
            stat = os.fstat(fd)
        except OSError:
            self.fd = self.path = None
            return
        self.fd, self.identity = fd, (stat.st_dev, stat.st_ino)

    def give_up(self) -> None:
        """The file opens but does not work here: closed, and never opened again."""
        fd, self.fd, self.path = self.fd, None, None
        if fd is not None:
            os.close(fd)

    def checked(self) -> int | None:
        """The descriptor, opened again when the one kept no longer names the file (that
        one is left alone: it is the step's now); None when the file cannot be opened."""
        if self.path is None:
            return None
        fd = self.fd
        if fd is not None:
            try:
                stat = os.fstat(fd)
                if (stat.st_dev, stat.st_ino) == self.identity:
                    return fd
            except OSError:
                pass
        self._open()
        return self.fd


_OWN: list[_Own] = []  # this process's, once a step ran in it


def open_files() -> None:
    """Open this process's /proc files before steps run in its threads: one set, not one per
    thread racing to open it."""
    _own()


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
