"""How long a run has left, in rounded words: `about 1 min 20 s left`.

The estimate has a basis only once the pipeline body has submitted its steps (it returned, or
it waits for a step's result) and a step has finished since: before that, nobody knows how many
steps are still to come. The pace is the time since the body began to wait over the steps
finished since then, so a body that worked for an hour before its last call does not count,
and a run where nothing finishes for a while sees its estimate grow, not freeze. The remaining
steps at that pace give the time left, never under a second, said to the nearest 5 s, 10 s,
minute, 10 min or day, and a week or more as "more than a week".
"""
from __future__ import annotations

import time
from collections.abc import Callable

FLOOR = 1.0  # seconds: while a step is left, never "0 s"
WEEK = 7 * 86400


class Estimate:
    """Counts the steps that finish while the body waits, with `clock` (monotonic seconds).
    Not thread-safe by itself: its owner (q2pconf._observe.progress) calls it under a lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._since: float | None = None  # when the body began to wait; None while it works
        self._finished = 0  # steps finished since then

    def waiting(self, waits: bool) -> None:
        """The body began (True) or stopped (False) waiting: it may call more steps after."""
        if not waits:
            self._since = None
        elif self._since is None:
            self._since, self._finished = self.clock(), 0

    def submitted(self) -> None:
        """The body called one more step: the steps to come are unknown again."""
        self._since = None

    def finished(self) -> None:
        self._finished += 1

    def seconds_left(self, remaining: int) -> float | None:
        """Seconds the `remaining` steps may take, or None without a basis (or none left)."""
        if self._since is None or self._finished == 0 or remaining <= 0:
            return None
        pace = max(0.0, self.clock() - self._since) / self._finished
        return max(FLOOR, remaining * pace)


def words(seconds: float) -> str:
    """`seconds` left, rounded as a person would say it."""
    if not seconds >= 10:  # also NaN
        return "a few seconds left"
    if seconds >= WEEK:
        return "more than a week left"
    grain = next(g for limit, g in _GRAINS if seconds < limit)
    rounded = int(round(seconds / grain) * grain)
    return f"about {_duration(rounded)} left"


# (below this many seconds, round to this many)
_GRAINS = ((60, 5), (600, 10), (3600, 60), (86400, 600), (float("inf"), 86400))


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return _two(*divmod(seconds, 60), "min", "s")
    if seconds < 86400:
        return _two(*divmod(seconds // 60, 60), "h", "min")
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''}"


def _two(big: int, small: int, big_unit: str, small_unit: str) -> str:
    return f"{big} {big_unit} {small} {small_unit}" if small else f"{big} {big_unit}"
