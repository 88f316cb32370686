"""How a session's Parsl parts are stopped (the signals that ask for it: _supervise.signals).

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
- Every block launched is cancelled, also one Parsl lost count of (q2pconf._parsl.statuses).
"""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from q2pconf._parsl.statuses import count_every_block
from q2pconf._supervise.interchange import InterchangeDied, htex_parts, interchange_ended

CLOSE_BOUND = 10.0  # seconds a close may take before its parts are killed
STOP_GRACE = 2.0  # seconds an interchange has to stop after SIGTERM
THREAD_POOLS = ("ThreadPoolExecutor",)


def is_thread_pool(executor: Any) -> bool:
    return type(executor).__name__ in THREAD_POOLS


def cancel_queued(dfk: Any) -> None:
    """Thread-pool steps that have not started never will (running ones cannot be stopped).
    Parsl's ThreadPoolExecutor.shutdown does not cancel them: its inner pool does."""
    for executor in list(dfk.executors.values()):
        inner = getattr(executor, "executor", None)
        if is_thread_pool(executor) and inner is not None:
            _quietly(lambda: inner.shutdown(wait=False, cancel_futures=True))


def finish(dfk: Any) -> None:
    """Parsl's full cleanup (waits for running thread steps), after cancelling queued ones;
    `stop` instead when an HTEX is dead or in bad state: Parsl's cleanup joins its status
    poller thread, which may be waiting for ever on an answer from a dead interchange."""
    cancel_queued(dfk)
    check_interchanges(dfk)
    if any(executor.bad_state_is_set for executor in htex_parts(dfk)):
        stop(dfk)
        return
    for executor in htex_parts(dfk):
        count_every_block(executor)  # one Parsl lost count of is cancelled too
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


def check_interchanges(dfk: Any) -> None:
    """Put every executor whose interchange has died in Parsl's bad state (its tasks fail with
    a message naming the interchange) and cancel its blocks: Parsl's cleanup then skips it."""
    for executor in htex_parts(dfk):
        if executor.interchange_proc.poll() is None or executor.bad_state_is_set:
            continue
        executor.set_bad_state_and_fail_all(InterchangeDied(interchange_ended(executor)))
        _cancel_blocks(executor)  # its workers go now, not when their guard notices
