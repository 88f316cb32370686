"""The wall time a recorded pipeline run would take on a config's worker slots: a replay.

A run's trace (q2pconf._observe.trace) holds each step call's duration, the executor it ran on and
the calls it waited for (`inputs`); its events file holds the body's own waits and its executors'
block events. The pipeline body is replayed as it ran: it works between its calls as long as it did,
submits each call, and waits where it waited (for a step's result, or for room in the window of
steps in flight, q2pconf._base.window). Each step runs once its inputs' results are back, on a free
worker slot of its executor; slots come up per block, a start-up cost after the block was requested.
The predicted time runs from the pipeline call to its return, as the run measured it. The replay is
an event-driven simulation in plain Python: deterministic, and 100,000 steps take a second or two.
It imports nothing of Parsl.

What it does not model: steps sharing CPUs (a slot runs its step as fast as it ran in the
recorded run), blocks ending (walltime, scale-in), and a body waiting in other ways than for
a step's result (`concurrent.futures.wait`, its own I/O): that time counts as its work.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from q2pconf._base.window import FLOOR, K

WORK, CALL, WAIT = "work", "call", "wait"  # the body's moves (Recording.body)
ROOM = "room"  # the body waits for room in the window


@dataclass
class Call:
    """One step call of a recorded run."""

    number: int
    executor: str
    duration: float  # seconds on a worker slot (all its attempts)
    inputs: tuple[int, ...] = ()  # the calls whose results it waited for


@dataclass
class Pool:
    """An executor's worker slots under a config: `workers_per_block` slots in each block."""

    label: str
    workers_per_block: int
    init_blocks: int = 1
    max_blocks: int = 1
    start_s: float = 0.0  # when its first blocks are requested, from the pipeline call
    startup_s: float = 0.0  # from a block's request to its workers taking steps
    dispatch_s: float = 0.0  # from a step being ready (and a slot free) to it running
    period_s: float | None = None  # Parsl's strategy looks every period from start_s, and
    # asks for more blocks (up to max_blocks) for the steps waiting beyond the slots coming

    @property
    def slots(self) -> int:
        return self.workers_per_block * self.max_blocks


@dataclass
class Recording:
    """What the replay needs of a run, independent of the config it ran with."""

    calls: dict[int, Call]
    body: list[tuple[str, float]]  # (WORK, seconds), (CALL, number), (WAIT, number)
    result_s: float = 0.0  # from a step's end to its result reaching dependents and the body
    tail_s: float = 0.0  # from the last result (or the body's return) to the call's return


def rounded(seconds: float) -> float | None:
    """A predicted time as JSON gives it: to the millisecond, None for one that never ends."""
    return None if math.isinf(seconds) else round(seconds, 3)


def window_of(pools: Iterable[Pool]) -> int:
    """The window of steps in flight q2pconf._base.window gives these pools (no env override)."""
    return max(FLOOR, K * sum(pool.slots for pool in pools))


def predict(recording: Recording, pools: dict[str, Pool], window: float | None = None) -> float:
    """Seconds from the pipeline call to its return, the recording replayed on `pools` (one
    per executor a call ran on; a call on an executor without a pool gets one slot), with
    the body waiting for room when `window` steps are in flight (default: q2pconf._base.window's
    rule; math.inf: no bound). Infinite when some step would never get a slot."""
    if window is None:
        window = window_of(pools.values())
    return _Replay(recording, pools, window).run()


@dataclass
class _PoolState:
    pool: Pool
    index: int
    free: int = 0  # slots up and idle
    blocks: int = 0  # requested so far
    coming: int = 0  # slots of blocks requested and not up yet
    queue: deque[int] = field(default_factory=deque)
    ticking: bool = False


class _Replay:
    """One replay: a heap of timed events, the body's place in its moves, and the pools."""

    def __init__(self, recording: Recording, pools: dict[str, Pool], window: float) -> None:
        self.recording, self.window = recording, window
        self.calls = recording.calls
        wanted = dict(pools)
        for call in self.calls.values():
            wanted.setdefault(call.executor, Pool(call.executor, 1))
        self.states = [_PoolState(pool, index) for index, pool in enumerate(wanted.values())]
        self.by_label = {state.pool.label: state for state in self.states}
        self.heap: list[tuple[float, int, str, int]] = []
        self.seq = 0
        self.missing: dict[int, int] = {}  # call -> inputs whose results are not back
        self.dependents: dict[int, list[int]] = {}
        self.back: set[int] = set()  # calls whose results are back
        self.in_flight = 0  # ready (inputs back), result not back
        self.position = 0  # the body's next move
        self.blocked: tuple[str, int] | None = None  # (WAIT, call) or (ROOM, low mark)
        self.submitted = 0
        self.body_end: float | None = None
        self.last = 0.0  # when the last result came back

    def at(self, when: float, kind: str, what: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, kind, what))

    def run(self) -> float:
        """The predicted time; infinite when some step never gets a slot."""
        for state in self.states:
            self.at(state.pool.start_s, "request", state.index)
        self.at(0.0, "body")
        handlers = {"body": self.body, "request": self.request, "up": self.up,
                    "done": self.done, "back": self.result, "tick": self.tick}
        while self.heap:
            now, _, kind, what = heapq.heappop(self.heap)
            handlers[kind](now, what)
        if self.body_end is None or len(self.back) < self.submitted:
            return math.inf
        return max(self.body_end, self.last) + self.recording.tail_s

    def body(self, now: float, _: int = 0) -> None:
        """The body moves on from `now` until it works for a while, waits, or returns."""
        moves = self.recording.body
        while self.position < len(moves):
            move, value = moves[self.position]
            if move == CALL and self.in_flight >= self.window:
                self.blocked = (ROOM, int(self.window // 2))
                return
            self.position += 1
            if move == WORK and value > 0:
                self.at(now + value, "body")
                return
            if move == CALL:
                self.submit(int(value), now)
            elif move == WAIT and int(value) in self.missing and int(value) not in self.back:
                self.blocked = (WAIT, int(value))
                return
        self.body_end = now

    def submit(self, number: int, now: float) -> None:
        call = self.calls.get(number)
        if call is None or number in self.missing:
            return
        self.submitted += 1
        waits = [i for i in set(call.inputs) if i in self.missing and i not in self.back]
        self.missing[number] = len(waits)
        for i in waits:
            self.dependents.setdefault(i, []).append(number)
        if not waits:
            self.ready(number, now)

    def ready(self, number: int, now: float) -> None:
        self.in_flight += 1
        state = self.by_label[self.calls[number].executor]
        state.queue.append(number)
        self.start(state, now)
        pool = state.pool
        if pool.period_s and not state.ticking and state.blocks < pool.max_blocks:
            state.ticking = True
            self.at(_next_tick(now, pool), "tick", state.index)

    def start(self, state: _PoolState, now: float) -> None:
        while state.free > 0 and state.queue:
            number = state.queue.popleft()
            state.free -= 1
            self.at(now + state.pool.dispatch_s + self.calls[number].duration, "done", number)

    def request(self, now: float, index: int) -> None:
        self.add_blocks(self.states[index], self.states[index].pool.init_blocks, now)

    def add_blocks(self, state: _PoolState, count: int, now: float) -> None:
        for _ in range(max(min(count, state.pool.max_blocks - state.blocks), 0)):
            state.blocks += 1
            state.coming += state.pool.workers_per_block
            self.at(now + state.pool.startup_s, "up", state.index)

    def up(self, now: float, index: int) -> None:
        state = self.states[index]
        state.coming -= state.pool.workers_per_block
        state.free += state.pool.workers_per_block
        self.start(state, now)

    def tick(self, now: float, index: int) -> None:
        """Parsl's strategy looks: a block for each block's worth of waiting steps that the
        blocks already coming will not take."""
        state = self.states[index]
        pool = state.pool
        short = len(state.queue) - state.coming
        if short > 0:
            self.add_blocks(state, math.ceil(short / max(pool.workers_per_block, 1)), now)
        if state.queue and state.blocks < pool.max_blocks:
            self.at(now + (pool.period_s or 1.0), "tick", index)
        else:
            state.ticking = False

    def done(self, now: float, number: int) -> None:
        state = self.by_label[self.calls[number].executor]
        state.free += 1
        self.start(state, now)
        self.at(now + self.recording.result_s, "back", number)

    def result(self, now: float, number: int) -> None:
        self.back.add(number)
        self.in_flight -= 1
        self.last = max(self.last, now)
        for dependent in self.dependents.pop(number, ()):
            self.missing[dependent] -= 1
            if self.missing[dependent] == 0:
                self.ready(dependent, now)
        blocked = self.blocked
        if blocked is not None and ((blocked[0] == WAIT and blocked[1] == number)
                                    or (blocked[0] == ROOM and self.in_flight <= blocked[1])):
            self.blocked = None
            self.body(now)


def _next_tick(now: float, pool: Pool) -> float:
    """The strategy's first look at or after `now` (it looks every period from `start_s`)."""
    period = pool.period_s or 1.0
    since = max(now - pool.start_s, 0.0)
    return pool.start_s + math.ceil(since / period) * period
