"""One message for a wait that lasts: nothing waits silently.

The rule: a wait that can last says once, on stderr, what it waits for and what to do, when
it has lasted AFTER seconds with nothing moving (each sign of progress starts the count
again). Time a paused process did not see does not count (`Awake`): after Ctrl-Z and `fg`, or
a laptop's sleep, nothing has been waited for that long.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

AFTER = 60.0  # seconds; read at each look, so a test's program may shorten it first
AWAKE_STEP = 2.0  # seconds at most that one gap between two looks counts


class Awake:
    """A clock of the seconds a process was awake to look: each look adds the time since the
    last one, at most AWAKE_STEP (a longer gap: the process was stopped, or starved)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._last: float | None = None

    def now(self) -> float:
        now = time.monotonic()
        if self._last is not None:
            self.seconds += min(max(now - self._last, 0.0), AWAKE_STEP)
        self._last = now
        return self.seconds


class Quiet:
    """Says `text(seconds)` once, when `look` finds AFTER seconds passed since the wait
    began, or since its `mark` (a count of what the wait is for) last changed."""

    def __init__(self, text: Callable[[float], str]) -> None:
        self.text = text
        self.said = False
        self._clock = Awake()
        self._since = 0.0
        self._mark: object = None

    def begin(self, mark: object = None) -> None:
        """A wait begins: count from now."""
        self._since, self._mark = self._clock.now(), mark

    def due(self, mark: object = None) -> bool:
        """Whether `look(mark)` would say it now."""
        return (not self.said and mark == self._mark
                and self._clock.now() - self._since >= AFTER)

    def look(self, mark: object = None) -> None:
        now = self._clock.now()
        if mark != self._mark:  # something the wait is for happened
            self._since, self._mark = now, mark
        if not self.said and now - self._since >= AFTER:
            self.said = True
            print(f"q2pconf: {self.text(now - self._since)}", file=sys.stderr, flush=True)
