"""How SIGTERM, SIGHUP and Ctrl-C end a program that runs pipelines.

A signal handler only notes the signal: it runs in the main thread between two bytecodes,
maybe while that thread holds the logging lock or a Parsl lock, so it writes one byte to a
pipe. A cleanup thread waiting on that pipe closes the sessions (q2pconf._supervise.closing)
and then lets the signal kill the process, as it would have without q2pconf. Ctrl-C never
lands inside Parsl's locks (`Interrupts`), and the pipeline calls in progress (`Calls`) get
a moment to record their end.
"""
from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from q2pconf._supervise.closing import CLOSE_BOUND, STOP_GRACE, bounded, hurried


CLOSING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


# Set once a closing signal has been read: the program is about to die of it.
SIGNALLED = threading.Event()


def await_signal_death() -> None:
    """If a signal is ending the program, wait for it to end (the cleanup thread kills the
    process, with the signal's exit status); otherwise return at once."""
    if SIGNALLED.is_set():
        SIGNALLED_END.wait(CLOSE_BOUND * 3)


SIGNALLED_END = threading.Event()  # never set: only waited on


CALLS_END_BOUND = 2.0  # seconds a signalled program gives its pipeline calls to record their end


class PipelineCalls:
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


CALLS = PipelineCalls()


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
        CALLS.wait_ended(CALLS_END_BOUND)
        os.kill(os.getpid(), signum)  # its default action now: the usual exit status


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
