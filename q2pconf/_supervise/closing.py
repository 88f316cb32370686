"""How a session's Parsl parts are stopped, and how SIGTERM/SIGHUP end the program.

Three rules, each learnt from a hang:

- Never ask a dead interchange anything. Parsl's own cleanup scales blocks in through a command
  to the interchange that has no timeout; after the interchange died (a signal to the whole
  process group, `kill -9`, a walltime) that command waits for ever. Blocks are cancelled
  through their provider instead, and a dead interchange puts its executor in Parsl's bad state
  (its tasks fail with a message naming it, and Parsl's cleanup skips it).
- Every close is bounded: it runs in a thread of its own and is given up after a few seconds,
  then the parts are killed (their q2pconf._parsl.guard ends what they started).
- A signal handler only notes the signal: it runs in the main thread between two bytecodes,
  maybe while that thread holds the logging lock or a Parsl lock, so it writes one byte to a
  pipe. A cleanup thread waiting on that pipe closes the sessions and then lets the signal
  kill the process, as it would have without q2pconf.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

CLOSE_BOUND = 10.0  # seconds a close may take before its parts are killed
STOP_GRACE = 2.0  # seconds an interchange has to stop after SIGTERM
THREAD_POOLS = ("ThreadPoolExecutor",)
CLOSING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class InterchangeDied(RuntimeError):
    """An HTEX interchange ended while its executor was in use."""


def is_thread_pool(executor: Any) -> bool:
    return type(executor).__name__ in THREAD_POOLS


def cancel_queued(dfk: Any) -> None:
    """Thread-pool steps that have not started never will (running ones cannot be stopped).
    Parsl's ThreadPoolExecutor.shutdown does not cancel them: its inner pool does."""
    for executor in list(dfk.executors.values()):
        inner = getattr(executor, "executor", None)
        if is_thread_pool(executor) and inner is not None:
            _quietly(lambda: inner.shutdown(wait=False, cancel_futures=True))


def htex_parts(dfk: Any) -> list[Any]:
    """The executors with an interchange process (started, or being started)."""
    return [executor for executor in list(dfk.executors.values())
            if getattr(executor, "interchange_proc", None) is not None]


def check_interchanges(dfk: Any) -> None:
    """Put every executor whose interchange has died in Parsl's bad state (its tasks fail with
    a message naming the interchange) and cancel its blocks: Parsl's cleanup then skips it."""
    for executor in htex_parts(dfk):
        if executor.interchange_proc.poll() is None or executor.bad_state_is_set:
            continue
        executor.set_bad_state_and_fail_all(InterchangeDied(interchange_ended(executor)))
        _cancel_blocks(executor)  # its workers go now, not when their guard notices


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


def finish(dfk: Any) -> None:
    """Parsl's full cleanup (waits for running thread steps), after cancelling queued ones;
    `stop` instead when an HTEX is dead or in bad state: Parsl's cleanup joins its status
    poller thread, which may be waiting for ever on an answer from a dead interchange."""
    cancel_queued(dfk)
    check_interchanges(dfk)
    if any(executor.bad_state_is_set for executor in htex_parts(dfk)):
        stop(dfk)
        return
    dfk.cleanup()


def stop(dfk: Any) -> None:
    """Stop every part without waiting for running steps and without a word to an
    interchange: blocks are cancelled through their provider, then interchanges stopped.
    Parsl's own shutdown is not used: it closes ZeroMQ sockets that other threads may be
    using at that moment (a signal comes at any moment), which can abort the process."""
    cancel_queued(dfk)
    for executor in htex_parts(dfk):
        _cancel_blocks(executor)
        exiting = getattr(executor, "_result_queue_thread_exit", None)
        if exiting is not None:
            exiting.set()
        _quietly(lambda: _end(executor.interchange_proc))


def _end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()


def kill(dfk: Any) -> None:
    """The last resort when a close did not end in time: SIGKILL every interchange (its guard
    takes the interchange along; pools notice within q2pconf._parsl.guard's --lost-after)."""
    for executor in htex_parts(dfk):
        _quietly(executor.interchange_proc.kill)


def _cancel_blocks(executor: Any) -> None:
    jobs = list(getattr(executor, "blocks_to_job_id", {}).values())
    if jobs and getattr(executor, "provider", None) is not None:
        _quietly(lambda: executor.provider.cancel(jobs))


@contextmanager
def hurried() -> Iterator[None]:
    """Closing while a thread step still computes (it cannot be stopped): that thread takes
    the GIL back every 5 ms (Python's switch interval), and a close makes hundreds of lock
    hand-offs between threads (Parsl logs every task's state change under one lock), each
    waiting for a switch: seconds, and under load past the close's bound. Switching every
    0.5 ms while closing ends that convoy; the old interval comes back after."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, 0.0005))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def bounded(action: Callable[[], None], fallback: Callable[[], None],
            seconds: float = CLOSE_BOUND) -> None:
    """Run `action` in a thread of its own; if it has not ended after `seconds`, run
    `fallback` instead of waiting any longer."""
    worker = threading.Thread(target=_quietly, args=(action,), name="q2pconf-close",
                              daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        logging.getLogger("parsl").warning("q2pconf: close took over %g s; killing", seconds)
        _quietly(fallback)


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception as error:  # we are going down anyway: record it in Parsl's log only
        logging.getLogger("parsl").warning("q2pconf: %r failed on close: %r", action, error)


# Set once a closing signal has been read: the program is about to die of it.
SIGNALLED = threading.Event()


def await_signal_death() -> None:
    """If a signal is ending the program, wait for it to end (the cleanup thread kills the
    process, with the signal's exit status); otherwise return at once."""
    if SIGNALLED.is_set():
        SIGNALLED_END.wait(CLOSE_BOUND * 3)


SIGNALLED_END = threading.Event()  # never set: only waited on
RUNS_END_BOUND = 2.0  # seconds a signalled program gives its pipeline calls to record their end


class Runs:
    """How many pipeline calls are under way. A signal's cleanup closes the sessions, then
    lets the calls (woken within half a second by the close) write how their run ended
    before the program dies: a trace then says "terminated", not "incomplete"."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    def begin(self) -> None:
        with self._changed:
            self._count += 1

    def end(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_ended(self, seconds: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._count <= 0, seconds)


RUNS = Runs()


class SignalCloser:
    """Closes the sessions when SIGTERM or SIGHUP arrives, then dies of that signal."""

    def __init__(self, close_all: Callable[[], None]) -> None:
        self.close_all = close_all
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # a full pipe must never block the handler
        threading.Thread(target=self._wait, name="q2pconf-signals", daemon=True).start()
        # A main thread that reaches the end first (an error from the closed session) must not
        # exit with status 1 before the cleanup thread makes it die of the signal.
        atexit.register(await_signal_death)

    def install(self) -> None:
        """Take SIGTERM and SIGHUP where the program has not taken them (main thread only)."""
        for signum in CLOSING_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        # The default comes back at once: the same signal again kills without waiting.
        signal.signal(signum, signal.SIG_DFL)
        try:
            os.write(self._write, bytes([signum]))
        except OSError:
            pass

    def _wait(self) -> None:
        signum = os.read(self._read, 1)[0]
        SIGNALLED.set()
        # close_all bounds its own close; this bound covers a lock the main thread holds.
        with hurried():
            bounded(self.close_all, lambda: None, CLOSE_BOUND + STOP_GRACE + 1)
        RUNS.wait_ended(RUNS_END_BOUND)
        os.kill(os.getpid(), signum)  # its default action now: the usual exit status


def cancel_not_started(dfk: Any, futures: list[Any]) -> None:
    """Cancel the thread-pool steps among `futures` that have not started (Parsl's AppFuture
    cannot be cancelled; the thread pool's own future of a queued step can, and Parsl then
    fails the step). HTEX futures are left alone: cancelling one breaks Parsl's result thread
    when the result arrives."""
    for future in futures:
        record = getattr(future, "task_record", None) or {}
        inner = record.get("exec_fu")
        if inner is not None and not future.done() and is_thread_pool(
                dfk.executors.get(record.get("executor"))):
            inner.cancel()


class Interrupts:
    """Ctrl-C during a pipeline call: KeyboardInterrupt at once while the pipeline's body runs
    its own code, but at the next safe point while q2pconf or Parsl runs in the main thread
    (within half a second). Raised between two arbitrary bytecodes there, it could leave the
    logging lock, a future's lock or Parsl's task-state lock held for ever, and every thread
    that needs it (at exit, all of them) then waits for ever. A second Ctrl-C does not wait.
    Only in the main thread, and only when the program has not set its own SIGINT handler."""

    def __init__(self) -> None:
        self.pending = False
        self.inside = 0
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if not self.inside:
            raise KeyboardInterrupt
        self.pending = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """Code during which a Ctrl-C waits for the next safe point."""
        self.inside += 1
        try:
            yield
        finally:
            self.inside -= 1
        self.raise_pending()

    @contextmanager
    def exposed(self) -> Iterator[None]:
        """The pipeline's body inside a shielded block: there Ctrl-C raises at once again."""
        saved, self.inside = self.inside, 0
        try:
            yield
        finally:
            self.inside = saved

    def raise_pending(self) -> None:
        """A safe point: raise the KeyboardInterrupt that arrived meanwhile, if any."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt
