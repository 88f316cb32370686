"""How many steps of one pipeline run may be in flight (submitted, not finished) at once.

A body like `[work(i) for i in range(n)]` submits steps faster than a small pool runs them. A
finished step keeps a few dozen bytes (q2pconf._base.futures, q2pconf._observe.history), but an
unfinished one holds ~8 KiB: Parsl's task record, its AppFuture and the executor's future (each with
a lock and condition of its own), the arguments, q2pconf's call record, callbacks and trace entry.
100,000 trivial steps on 2 threads had ~4,000 in flight at the peak (~3.3 KiB of peak RSS a step,
varying with how far the threads fell behind). So when the body's own thread submits a step while
`size()` steps are in flight (submitted, unfinished, their inputs ready: a fan-out waiting for one
long step is not in flight, and must not hold back the body's later, independent steps), it waits
until about half are left (q2pconf.pipeline._decorators, `Run`): memory stays bounded however many
runnable steps a body calls (steps waiting for an input are the pipeline's own shape, and hold their
~8 KiB until it is ready), and the executors never run dry, since half a window still waits for
them.

The rule: size = max(FLOOR, K x the worker slots of the session's executors), or
$Q2PCONF_MAX_IN_FLIGHT when set. Slots: a thread pool's `max_threads`; an HTEX's workers per
node x `nodes_per_block` x `max_blocks` (what its blocks could run once Parsl's strategy has
scaled out to max_blocks; Parsl's "simple" strategy scales out only for tasks it sees
outstanding, so K x slots keeps enough of them in its sight); an executor of another kind
UNKNOWN_SLOTS. K = 4 leaves each slot about two steps when the body resumes at half a
window. FLOOR bounds a small pool's window. Measured on 2 threads (`python -m benchmarks
--only memory`), each step in flight costs ~6.5 KiB of peak RSS once finished tasks are freed
at once (q2pconf._base.futures.Release): a window of 256 gave ~0.17 KiB a step for 10,000 steps,
512 ~0.35, 1024 ~0.66, none 0.1-2.7 (as far as the threads fell behind). 512 keeps the row
well under its 1 KiB goal and leaves a pool 256 steps queued when the body resumes.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

WINDOW_VAR = "Q2PCONF_MAX_IN_FLIGHT"
FLOOR = 512
K = 4
UNKNOWN_SLOTS = 256  # an executor of a kind whose workers are not counted here
NODE_GUESS = 64  # workers a node runs when max_workers_per_node is unset (one per core there)


def size(executors: dict[str, Any]) -> int | None:
    """Steps one run may have in flight before its body waits; None: no bound
    ($Q2PCONF_MAX_IN_FLIGHT=0)."""
    raw = os.environ.get(WINDOW_VAR, "").strip()
    if raw:
        return _from_env(raw)
    return max(FLOOR, K * sum(_slots(executors)))


def _from_env(raw: str) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0 or value == 1:
        raise ValueError(f"{WINDOW_VAR}={raw!r} is not a number of steps: set it to 2 or more "
                         "(steps in flight before the pipeline body waits), 0 for no bound, "
                         "or unset it for the default")
    return value or None


def _slots(executors: dict[str, Any]) -> Iterable[int]:
    """The worker slots of each executor (Parsl's internal one left out)."""
    for label, executor in list(executors.items()):
        if not label.startswith("_"):
            yield slots(executor)


def slots(executor: Any) -> int:
    """Steps `executor` can run at once, all its blocks started."""
    threads = getattr(executor, "max_threads", None)
    if isinstance(threads, int):
        return max(threads, 1)
    provider = getattr(executor, "provider", None)
    workers = getattr(executor, "workers_per_node", None)  # Parsl >= 2024.12 (HTEX, MPI)
    if provider is None or not isinstance(workers, (int, float)):
        return UNKNOWN_SLOTS
    if getattr(executor, "max_workers_per_node", None) == math.inf:
        # Parsl guesses 1; the pool starts one worker per core of a node we cannot see
        workers = max(workers, NODE_GUESS)
    nodes = getattr(provider, "nodes_per_block", 1) or 1
    blocks = getattr(provider, "max_blocks", 1) or 1
    return max(int(workers * nodes * blocks), 1)
