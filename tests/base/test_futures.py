"""StepFuture (what a step call returns) and History (where each step ran), on their own."""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, TimeoutError, as_completed, wait

import pytest

from q2pconf._base import nested
from q2pconf._base.futures import WAITS, StepFuture
from q2pconf._base.nested import awaited
from q2pconf._observe.history import _doomed
from q2pconf._observe.history import History, StepRecord


def test_a_step_future_takes_its_sources_outcome_and_lets_it_go() -> None:
    source: Future[int] = Future()
    future = StepFuture().follow(source)
    seen: list[int] = []
    future.add_done_callback(lambda done: seen.append(done.result()))
    assert not future.done()
    source.set_result(7)
    assert future.done() and future.result() == 7 and future.exception() is None
    assert seen == [7]
    assert sys.getrefcount(source) == 2  # this test's name and the call's argument only


def test_a_step_future_carries_its_sources_error() -> None:
    source: Future[int] = Future()
    future = StepFuture().follow(source)
    source.set_exception(KeyError("x"))
    assert isinstance(future.exception(), KeyError)
    with pytest.raises(KeyError):
        future.result()


def test_a_wait_for_a_result_is_told_in_the_waiting_context_only() -> None:
    """WAITS (what a pipeline run sets in its body's context) hears when a wait begins and
    ends; a future already done, or a wait in another thread, tells it nothing."""
    told: list[bool] = []  # True as a wait begins (no end time yet), False as it ends
    token = WAITS.set(lambda call, began, ended: told.append(ended is None))
    try:
        source: Future[int] = Future()
        future = StepFuture().follow(source)
        threading.Timer(0.1, source.set_result, (3,)).start()
        assert future.result(timeout=30) == 3
        assert told == [True, False]
        assert future.result() == 3 and told == [True, False]  # done: no wait
        other = StepFuture().follow(Future())

        def wait_there() -> None:
            with pytest.raises(TimeoutError):
                other.exception(timeout=0.05)

        waiter = threading.Thread(target=wait_there)
        waiter.start()
        waiter.join(timeout=30)
        assert told == [True, False]
    finally:
        WAITS.reset(token)


def test_another_futures_completion_does_not_end_a_wait_early() -> None:
    """All step futures share one condition: a wake-up for another is not a result."""
    mine, other = StepFuture(), StepFuture()
    timer = threading.Timer(0.2, other.set_result, (1,))
    timer.start()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        mine.result(timeout=1.0)
    assert time.monotonic() - began >= 0.9  # it kept waiting after the other one finished
    timer.join()
    threading.Timer(0.1, mine.set_result, (2,)).start()
    assert mine.result(timeout=10) == 2


def test_wait_and_as_completed_take_step_futures() -> None:
    first, second = StepFuture(), StepFuture()
    threading.Timer(0.1, second.set_result, ("b",)).start()
    done, pending = wait([first, second], timeout=10, return_when=FIRST_COMPLETED)
    assert done == {second} and pending == {first}
    first.set_result("a")
    assert {f.result() for f in as_completed([first, second], timeout=10)} == {"a", "b"}


def test_a_step_cannot_be_cancelled_once_sent() -> None:
    future = StepFuture()
    assert future.cancel() is False and not future.cancelled()
    future.set_result(None)
    assert "finished" in repr(future)


def test_a_finished_step_future_is_small() -> None:
    """A plain Future is ~1.6 KiB (its own lock and condition); a StepFuture a few slots."""
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        futures = [StepFuture() for _ in range(2000)]
        for future in futures:
            future.set_result(None)
        each = (tracemalloc.get_traced_memory()[0] - before) / len(futures)
    finally:
        tracemalloc.stop()
    assert each < 400, f"{each:.0f} bytes per finished StepFuture"


def test_history_is_a_compact_sequence_in_submission_order() -> None:
    history = History()
    first = history.submitted("load", "default")
    second = history.submitted("crunch", "htex")
    history.finished(second, 20.0, 21.5, "exec_done")
    assert len(history) == 2
    assert history[0] == StepRecord("load", "default", None, None, "pending")
    assert history[1] == StepRecord("crunch", "htex", 20.0, 21.5, "exec_done")
    history.finished(first, 10.0, None, "failed")
    assert [r.state for r in history] == ["failed", "exec_done"]
    assert history[-1].name == "crunch" and history[:1] == [history[0]]
    assert history == list(history)


def _done(value: object = None, error: BaseException | None = None) -> Future[object]:
    future: Future[object] = Future()
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)
    return future


def test_a_step_waits_only_for_the_futures_that_have_not_succeeded() -> None:
    """What Parsl is told to wait for (q2pconf._base.nested.awaited): a fan-in over finished steps
    gives Parsl nothing to follow, a failed input stays (Parsl fails the step with it)."""
    failed = _done(error=KeyError("x"))
    pending: Future[object] = Future()
    assert awaited([_done(1), _done(2), {"k": (_done(3),)}]) == []
    assert awaited([_done(1), failed]) == [failed]
    assert awaited([_done(1), pending]) == [pending]
    pending.set_result(4)
    assert nested.unwrap([_done(1), pending]) == [1, 4]  # the step still gets every value
    with pytest.raises(KeyError):
        nested.unwrap([_done(1), failed])


def test_several_unfinished_inputs_are_one_future_done_when_all_are() -> None:
    first: Future[object] = Future()
    second: Future[object] = Future()
    (gate,) = awaited([first, _done(0), {"b": second}])
    first.set_result(1)
    assert not gate.done()
    second.set_result(2)
    assert gate.done() and gate.result() is None


def test_the_gate_fails_like_the_first_failed_input_once_all_are_done() -> None:
    first: Future[object] = Future()
    second: Future[object] = Future()
    third: Future[object] = Future()
    (gate,) = awaited((first, second, third))
    second.set_exception(ValueError("bad sample"))
    assert not gate.done()  # Parsl must not unwrap inputs that are still running
    assert _doomed(gate, set())  # a run ending now traces the step as dependency_failed
    first.set_result(1)
    third.cancel()
    assert isinstance(gate.exception(timeout=5), ValueError)
    (cancelled,) = awaited([third, Future()])
    assert not cancelled.done()


def test_a_step_future_lets_its_callbacks_go_once_run() -> None:
    future = StepFuture()
    seen: list[object] = []
    future.add_done_callback(seen.append)
    future.set_result(3)
    assert seen == [future] and future._done_callbacks == []
    future.add_done_callback(seen.append)  # a later one runs at once, as ever
    assert seen == [future, future]
