"""The one-line progress report on a terminal: `q2pconf: 12/40 steps done, 3 running, 0 failed`."""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

INTERVAL = 0.2


class Progress:
    """Counts steps and, on a terminal, redraws one line in place while the pipeline runs.

    Silent when stderr is not a terminal or when Q2PCONF_PROGRESS=0."""

    def __init__(self, stream: TextIO | None = None,
                 running: Callable[[], int] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.running = running  # steps handed to an executor; else all not done yet
        self.total = self.done = self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.enabled = _wanted(self.stream)

    def submitted(self) -> None:
        with self._lock:
            self.total += 1

    def finished(self, failed: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += failed

    def line(self) -> str:
        with self._lock:
            total, done, failed = self.total, self.done, self.failed
        running = total - done if self.running is None else min(self.running(), total - done)
        return f"q2pconf: {done - failed}/{total} steps done, {running} running, {failed} failed"

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, name="q2pconf-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._write(self.line() + "\n")

    def _draw(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._write(self.line())

    def _write(self, text: str) -> None:
        try:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing, not the pipeline
            self._stop.set()


def _wanted(stream: TextIO) -> bool:
    if os.environ.get("Q2PCONF_PROGRESS", "").strip() == "0":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
