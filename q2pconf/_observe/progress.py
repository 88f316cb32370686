"""The progress of a run where its user looks: one line redrawn in place on a terminal, one
display updated in place in a Jupyter notebook (q2pconf._observe.notebook):
`q2pconf: 12/40 steps done, 3 running, 0 failed, about 1 min 20 s left`. The time left shows
once the pipeline body has submitted its steps and one has finished since
(q2pconf._observe.estimate)."""
from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from q2pconf._observe import notebook
from q2pconf._observe.estimate import Estimate, words

INTERVAL = 0.2


class Sink(Protocol):
    """Where the progress shows: `show` while the run goes on, `end` once when it ended."""

    def show(self, text: str, done: int, total: int) -> None: ...

    def end(self, text: str, done: int, total: int) -> None: ...


class Progress:
    """Counts steps and, on a terminal or in a notebook, redraws their count in place while
    the pipeline runs; its last state stays when the run ends, however it ends.

    Silent elsewhere (stderr not a terminal, no kernel) and when Q2PCONF_PROGRESS=0."""

    def __init__(self, stream: TextIO | None = None,
                 running: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.running = running  # steps handed to an executor; else all not done yet
        self.total = self.done = self.failed = self.unrun = 0
        self.estimate = Estimate(clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sink = _sink(self.stream)
        self.enabled = self.sink is not None

    def submitted(self) -> None:
        with self._lock:
            self.total += 1
            self.estimate.submitted()

    def finished(self, failed: bool, unrun: bool = False) -> None:
        """A step ended: done, `failed`, or `unrun` (cancelled, or an input failed: it never
        ran), counted as the report counts them."""
        with self._lock:
            self.done += 1
            self.failed += failed
            self.unrun += unrun
            self.estimate.finished()

    def waiting(self, waits: bool) -> None:
        """The pipeline body began (or stopped) waiting for its steps: see Estimate."""
        with self._lock:
            self.estimate.waiting(waits)

    def line(self) -> str:
        return self._state()[0]

    def _state(self) -> tuple[str, int, int]:
        """The words, and the steps done and submitted."""
        with self._lock:
            total, done, failed, unrun = self.total, self.done, self.failed, self.unrun
            left = self.estimate.seconds_left(total - done)
        running = total - done if self.running is None else min(self.running(), total - done)
        text = (f"q2pconf: {done - failed - unrun}/{total} steps done, {running} running, "
                f"{failed} failed" + (f", {unrun} not run" if unrun else ""))
        return (text if left is None else f"{text}, {words(left)}"), done, total

    def __enter__(self) -> Progress:
        if self.enabled:
            # in a copy of the caller's context: a notebook's updates name the running cell
            self._thread = threading.Thread(target=contextvars.copy_context().run,
                                            args=(self._draw,), name="q2pconf-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self.waiting(False)  # the run ended (failed, interrupted): no time left to tell
        self._write(last=True)

    def _draw(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._write()

    def _write(self, last: bool = False) -> None:
        assert self.sink is not None
        try:
            (self.sink.end if last else self.sink.show)(*self._state())
        except Exception:  # the terminal or the kernel went away: stop drawing, not the run
            self._stop.set()


class Terminal:
    """One line of a terminal, redrawn in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def show(self, text: str, done: int, total: int) -> None:
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()

    def end(self, text: str, done: int, total: int) -> None:
        self.show(text + "\n", done, total)


def _sink(stream: TextIO) -> Sink | None:
    if os.environ.get("Q2PCONF_PROGRESS", "").strip() == "0":
        return None
    try:
        if stream.isatty():
            return Terminal(stream)
    except (AttributeError, ValueError):
        pass
    return notebook.Display() if notebook.kernel_running() else None
