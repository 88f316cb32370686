"""What q2pconf knows of a session's HTEX interchanges: whether one is alive, where its log is,
how it ended (named by the pid the user sees in `ps`), and the error for one that died.

Asked without ever sending the interchange a command: a dead interchange answers nothing, and
Parsl's commands to it have no timeout (see q2pconf._supervise.closing).
"""
from __future__ import annotations

import os
import signal
from typing import Any


class InterchangeDied(RuntimeError):
    """An HTEX interchange ended while its executor was in use."""


def htex_parts(dfk: Any) -> list[Any]:
    """The executors with an interchange process (started, or being started)."""
    return [executor for executor in list(dfk.executors.values())
            if getattr(executor, "interchange_proc", None) is not None]


# The interchange's own pid by its guard's pid: a message about its death names the pid the
# user sees in `ps` (Linux; elsewhere the guard's pid is named).
_GUARDED: dict[int, int] = {}


def remember(executor: Any) -> None:
    """Note the pid of a just-started executor's interchange (the child of its guard)."""
    process = getattr(executor, "interchange_proc", None)
    if process is None:
        return
    try:
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as children:
            found = children.read().split()
    except OSError:
        return
    if found:
        _GUARDED[process.pid] = int(found[0])


def interchange_alive(executor: Any) -> bool:
    """Whether an executor's interchange runs (started or not yet: True), looking at the
    interchange itself where its guard's pid was remembered, not only at the guard."""
    process = getattr(executor, "interchange_proc", None)
    if process is None:
        return True
    if process.poll() is not None:
        return False
    pid = _GUARDED.get(process.pid)
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return pid is None  # gone, unless it was never remembered (not Linux)


def interchange_log(executor: Any) -> str | None:
    """Where an executor's interchange writes its log (None before Parsl set its logdir)."""
    return os.path.join(executor.logdir, "interchange.log") if executor.logdir else None


def interchange_ended(executor: Any) -> str:
    """How an executor's interchange ended: its pid, the signal or status, its log."""
    process = executor.interchange_proc
    status = process.returncode
    how = (f"was killed by {signal.Signals(-status).name}" if status < 0
           else f"exited with status {status}")
    log = interchange_log(executor) or "its run_dir"
    pid = _GUARDED.get(process.pid, process.pid)
    return f"the interchange of executor {executor.label!r} (pid {pid}) {how}; its log is {log}"
