"""The time-left estimate on hand-made sequences of steps, with a clock the test moves."""
from __future__ import annotations

import os
import pty
import select

import pytest

from q2pconf._observe.estimate import Estimate, words
from q2pconf._observe.progress import Progress


class Clock:
    """Seconds the test sets by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_no_basis_before_the_body_waits_and_a_step_finished_since() -> None:
    clock = Clock()
    estimate = Estimate(clock)
    estimate.finished()  # finished while the body still calls steps: no basis
    assert estimate.seconds_left(10) is None
    clock.now = 5
    estimate.waiting(True)
    assert estimate.seconds_left(10) is None  # waits, but nothing finished since
    clock.now = 7
    estimate.finished()
    assert estimate.seconds_left(10) == pytest.approx(20)  # 2 s a step since it waits


def test_a_steady_pace_gives_the_true_time_left() -> None:
    """40 steps, 4 at once, 3 s each, all called at 0: 10 rounds of 3 s."""
    clock = Clock()
    estimate = Estimate(clock)
    estimate.waiting(True)
    for round_ in range(1, 10):
        clock.now = 3.0 * round_
        for _ in range(4):
            estimate.finished()
        assert estimate.seconds_left(40 - 4 * round_) == pytest.approx(30 - 3 * round_)


def test_a_pause_makes_it_grow_and_more_steps_hide_it() -> None:
    clock = Clock()
    estimate = Estimate(clock)
    estimate.waiting(True)
    clock.now = 1
    estimate.finished()
    assert estimate.seconds_left(5) == pytest.approx(5)
    clock.now = 4  # nothing more finished: 4 s a step so far
    assert estimate.seconds_left(5) == pytest.approx(20)
    estimate.waiting(False)  # the result came: the body may call more steps
    assert estimate.seconds_left(5) is None
    estimate.waiting(True)
    estimate.submitted()  # it did: how many more will come is unknown again
    clock.now = 6
    estimate.finished()
    assert estimate.seconds_left(5) is None


def test_a_second_wait_counts_from_its_own_start() -> None:
    """Steps finished during an earlier wait, and the time before, do not count."""
    clock = Clock()
    estimate = Estimate(clock)
    estimate.waiting(True)
    clock.now = 100
    estimate.finished()
    estimate.waiting(False)
    clock.now = 3600  # the body worked for an hour
    estimate.waiting(True)
    estimate.waiting(True)  # told again (the body returned): the wait began earlier
    clock.now = 3602
    estimate.finished()
    assert estimate.seconds_left(3) == pytest.approx(6)


def test_never_negative_nor_zero_while_steps_are_left_and_none_when_done() -> None:
    clock = Clock()
    estimate = Estimate(clock)
    clock.now = 10
    estimate.waiting(True)
    estimate.finished()  # at once: no time has passed
    assert estimate.seconds_left(3) == 1.0
    clock.now = 9  # a clock that went back
    assert estimate.seconds_left(3) == 1.0
    assert estimate.seconds_left(0) is None


@pytest.mark.parametrize("seconds, said", [
    (0, "a few seconds left"), (9.9, "a few seconds left"), (float("nan"), "a few seconds left"),
    (10, "about 10 s left"), (23, "about 25 s left"), (58, "about 1 min left"),
    (80, "about 1 min 20 s left"), (84, "about 1 min 20 s left"), (599, "about 10 min left"),
    (754, "about 13 min left"), (3599, "about 1 h left"), (3 * 3600 + 640, "about 3 h 10 min left"),
    (86300, "about 1 day left"), (3.4 * 86400, "about 3 days left"),
    (7 * 86400, "more than a week left"), (1e12, "more than a week left"),
    (float("inf"), "more than a week left"),
])
def test_said_in_rounded_words(seconds: float, said: str) -> None:
    assert words(seconds) == said


def test_the_line_shows_the_estimate_once_it_has_a_basis() -> None:
    """Progress's own line, off any terminal (it only counts then)."""
    clock = Clock()
    progress = Progress(running=lambda: 2, clock=clock)
    for _ in range(10):
        progress.submitted()
    progress.finished(failed=False)
    assert progress.line() == "q2pconf: 1/10 steps done, 2 running, 0 failed"
    progress.waiting(True)
    clock.now = 40  # 8 left at 40 s each
    progress.finished(failed=False)
    assert progress.line() == ("q2pconf: 2/10 steps done, 2 running, 0 failed, "
                               "about 5 min 20 s left")
    for _ in range(8):
        progress.finished(failed=False)
    assert progress.line() == "q2pconf: 10/10 steps done, 0 running, 0 failed"


def test_steps_that_never_ran_are_not_counted_as_failed() -> None:
    """One failed step and four cancelled behind it: `1 failed, 4 not run`, as the report
    counts them (its header says 1 failed, 4 cancelled), not `5 failed`."""
    progress = Progress(running=lambda: 0, clock=Clock())
    for _ in range(5):
        progress.submitted()
    progress.finished(failed=True)
    for _ in range(4):
        progress.finished(failed=False, unrun=True)
    assert progress.line() == "q2pconf: 0/5 steps done, 0 running, 1 failed, 4 not run"


def test_a_run_that_ended_early_leaves_a_last_line_without_time_left() -> None:
    """A failed or interrupted run has steps left, but no time left to tell (a real pty)."""
    leader, follower = pty.openpty()
    clock = Clock()
    with open(follower, "w", closefd=True) as terminal:
        with Progress(stream=terminal, clock=clock) as progress:
            for _ in range(3):
                progress.submitted()
            progress.waiting(True)
            clock.now = 5
            progress.finished(failed=True)
            assert progress.line().endswith(", 1 failed, about 10 s left")
    shown = b""
    while select.select([leader], [], [], 0)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # all read, and the terminal's other end is closed
            break
        shown += chunk
    os.close(leader)
    assert shown.decode().endswith("\r\x1b[Kq2pconf: 0/3 steps done, 2 running, 1 failed\r\n")
