"""A supervisor for one HTEX part, so that no interchange, worker pool or worker outlives the
program that started it, whatever ends that program.

q2pconf launches Parsl's interchange and worker pool through it (see build.py)::

    python -m q2pconf._parsl.guard interchange -- python -m ...interchange
    python -m q2pconf._parsl.guard pool -- python -m ...process_worker_pool -a ADDRS --port=PORT ...

The guard runs the command as its child, in a process group of its own (the child and whatever
it starts: a pool's workers), and ends that whole group

- when the child exits (a `kill -9`'d pool leaves no orphaned workers), then exits the same way;
- when the guard gets SIGTERM, SIGINT or SIGHUP (a provider cancelling its block), then dies
  of that signal;
- `interchange`: when the program that started it is gone (SIGKILL, the OOM killer): the
  guard is reparented, so `os.getppid()` changes;
- `pool`: when the interchange refuses or drops TCP connections to its worker port for
  `--lost-after` seconds (the pool may run on another host, so no pid can be watched; time the
  guard itself was stopped, by Ctrl-Z or a laptop's sleep, does not count); and,
  given `--program PID:START` (a pool on the program's own host: LocalProvider), when that
  process, alive when the guard started, is gone (a pid reused since has another START; a pid
  not seen at the start, as on another node of an allocation, is not watched).

The interchange's guard also starts a new session: a terminal's Ctrl-C, Ctrl-Z or hangup then
reach only the program, which stops the interchange itself (an interchange killed by the
terminal's SIGINT left the program's scale-in waiting for an answer for ever). A worker pool
started by Parsl's LocalProvider is already in a process group of its own.

The guard uses no Parsl and imports only the standard library: it must start fast, and on a
cluster node it runs with the same interpreter as the worker pool.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

POLL = 0.2  # seconds between looks at the child, the parent and the signals
PROBE = 1.0  # seconds between connection attempts to the interchange
LOST_AFTER_VAR = "Q2PCONF_LOST_AFTER"  # seconds of refused connections before a pool ends
LOST_AFTER = 10.0
PAUSED = 5.0  # seconds a probe is late when the guard itself was stopped (Ctrl-Z, a sleep)
GRACE = 2.0  # seconds between SIGTERM and SIGKILL to the child's group
ENDING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1
SCRATCH_VAR = "Q2PCONF_POOL_SCRATCH"  # the pool's directory for multiprocessing's sockets
# Longest base directory for it: below it, "/q2pconf-pool-XXXXXXXX/pymp-XXXXXXXX/
# listener-XXXXXXXX" (54 bytes) must still fit in a socket's path: 107 bytes on Linux, 103 on
# macOS (whose per-user $TMPDIR, /var/folders/../T, is 48).
SOCKET_BASE = 49

_noted: list[int] = []


def main(argv: Sequence[str] | None = None) -> None:
    words = list(sys.argv[1:] if argv is None else argv)
    if "--" not in words or words.index("--") == len(words) - 1:
        sys.exit("q2pconf._parsl.guard: no command to run after --")
    split = words.index("--")
    args, command = _parser().parse_args(words[:split]), words[split + 1:]
    parent = os.getppid()
    if args.role == "interchange":
        os.setsid()
    for signum in ENDING:
        signal.signal(signum, _note)
    scratch = _scratch() if args.role == "pool" else None
    env = None if scratch is None else {**os.environ, SCRATCH_VAR: scratch}
    child = subprocess.Popen(command, preexec_fn=_child_setup, env=env)  # stdin passed on
    watch = _Interchange(command, args.lost_after) if args.role == "pool" else None
    # Watched only if seen alive now: on another node (LocalProvider with SrunLauncher in an
    # allocation) or in another pid namespace, the pid names no process, and that is not death.
    program = args.program if args.program and not _gone(args.program) else None
    reason = _supervise(child, parent, watch, program)
    if reason is None:  # the child ended by itself
        _end_group(child.pid, signal.SIGKILL)
        status = child.wait()
    else:
        if not _noted:  # a signal is how Parsl and providers stop a part: no news
            _say(f"{reason}: ending the {args.role} (pid {child.pid}) and its process group")
        _stop(child)
        status = -_noted[0] if _noted else 1
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    _exit_like(status)


def _scratch() -> str | None:
    """A directory for the pool's multiprocessing sockets (q2pconf._parsl.pool puts them here),
    removed when the pool ends. multiprocessing removes its own `pymp-*` directory only at a
    clean exit, and a pool always ends by a signal: one directory with two sockets was left in
    the temporary directory per block otherwise."""
    import tempfile

    base = tempfile.gettempdir()
    if len(base) > SOCKET_BASE:  # a socket's path has at most 103 bytes (macOS)
        base = "/tmp" if os.access("/tmp", os.W_OK | os.X_OK) else ""
    try:
        return tempfile.mkdtemp(prefix="q2pconf-pool-", dir=base) if base else None
    except OSError:  # no writable temporary directory: multiprocessing will say so itself
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m q2pconf._parsl.guard", usage="%(prog)s "
                                     "{interchange,pool} [--lost-after S] -- COMMAND...",
                                     description="Run an HTEX part; end it with its program.")
    parser.add_argument("role", choices=("interchange", "pool"))
    default = _seconds(os.environ.get(LOST_AFTER_VAR) or str(LOST_AFTER))
    parser.add_argument("--lost-after", type=float, default=default,
                        help="pool: seconds the interchange may refuse connections")
    parser.add_argument("--program", metavar="PID:START", type=_process, default=None,
                        help="pool: end with this process of this host (see process_id)")
    return parser


def process_id(pid: int) -> str:
    """PID:START for `--program`: START is when the process started (Linux: clock ticks
    after boot, /proc/PID/stat), so a pid used again later does not look alive."""
    return f"{pid}:{_started(pid)}"


def _started(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "-"


def _process(text: str) -> tuple[int, str]:
    pid, _, start = text.partition(":")
    if not pid.isdigit() or not start:
        raise argparse.ArgumentTypeError(f"{text!r} is not PID:START")
    return int(pid), start


def _gone(program: tuple[int, str]) -> bool:
    pid, start = program
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's: a reused pid
        return True
    return start != "-" and _started(pid) != start


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:  # also NaN
        sys.exit(f"q2pconf._parsl.guard: {LOST_AFTER_VAR}={text!r} is not a number of seconds: "
                 f"set it to a positive number, or unset it for {LOST_AFTER:g}")
    return value


def _note(signum: int, frame: object) -> None:
    """Signal handler: only note the signal; the loop acts on it."""
    _noted.append(signum)


def _child_setup() -> None:
    """In the child before exec: its own process group, and death with the guard (Linux)."""
    os.setpgid(0, 0)
    if _PRCTL is not None:
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits: the guard forks from
        # its main thread, which lives until the guard exits.
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _prctl() -> Any:
    """libc's prctl, looked up before the fork (nothing but the call happens after it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _supervise(child: subprocess.Popen[bytes], parent: int, watch: _Interchange | None,
               program: tuple[int, str] | None = None) -> str | None:
    """Wait until the child ends (None) or a reason to end it comes up (that reason)."""
    while not _exited(child):
        if _noted:
            return f"got {signal.Signals(_noted[0]).name}"
        if parent != 1 and os.getppid() != parent:
            return f"the program that started it (pid {parent}) is gone"
        if program is not None and _gone(program):
            return f"the program that started it (pid {program[0]}) is gone"
        if watch is not None and watch.lost():
            return f"the interchange at {watch.where()} is gone"
        time.sleep(POLL)
    return None


def _exited(child: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, without reaping it: its pid stays reserved, so the
    process group of that number is still the child's when we end it. Python before 3.13 has
    no os.waitid on macOS: the child is then reaped (Popen keeps its status), and its group
    keeps its number while any process of it, a worker, lives."""
    if not hasattr(os, "waitid"):
        return child.poll() is not None
    try:
        return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's group, SIGKILL to what is left after GRACE seconds."""
    _end_group(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while not _exited(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    _end_group(child.pid, signal.SIGKILL)
    child.wait()


def _end_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _exit_like(status: int) -> None:
    """Exit with `status` as Popen reports it: -N means die of signal N."""
    if status >= 0:
        sys.exit(status)
    sys.stderr.flush()
    if -status not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(-status, signal.SIG_DFL)
    os.kill(os.getpid(), -status)
    sys.exit(128 - status)  # a signal that does not kill by default


def _say(text: str) -> None:
    print(f"q2pconf._parsl.guard[{os.getpid()}]: {text}", file=sys.stderr, flush=True)


class _Interchange:
    """The interchange as a worker pool sees it: addresses and port from the pool's command
    line (`-a A,B --port=P`; Parsl before 2025 has `--task_port=P`)."""

    def __init__(self, command: Sequence[str], lost_after: float) -> None:
        self.addresses = _option(command, ("-a", "--addresses")).split(",")
        port = _option(command, ("--port", "--worker_port", "--task_port"))
        self.port = int(port) if port.isdigit() else None
        self.lost_after = lost_after
        self.last_seen = time.monotonic()
        self.next_probe = 0.0

    def where(self) -> str:
        return f"{','.join(self.addresses)}:{self.port}"

    def lost(self) -> bool:
        now = time.monotonic()
        if self.port is None or now < self.next_probe:
            return False
        if now - self.next_probe > PAUSED:  # stopped: what it did not see is no loss
            self.last_seen = now  # (the whole run was, and it goes on: the first probe may fail)
        self.next_probe = now + PROBE
        if any(self._answers(address) for address in self.addresses if address):
            self.last_seen = time.monotonic()
        return time.monotonic() - self.last_seen > self.lost_after

    def _answers(self, address: str) -> bool:
        try:
            with socket.create_connection((address, self.port), timeout=PROBE):
                return True
        except OSError:
            return False


def _option(command: Sequence[str], names: Sequence[str]) -> str:
    """The value of the first of `names` in `command` (`--name=value` or `--name value`)."""
    for index, word in enumerate(command):
        for name in names:
            if word == name and index + 1 < len(command):
                return command[index + 1]
            if word.startswith(name + "="):
                return word[len(name) + 1:]
    return ""


if __name__ == "__main__":
    main()
