"""Block and worker events of a session's executors, for the traces of its runs.

A replay of a run (q2pconf._observe.replay) needs when each executor started, when its blocks were
requested and when they ran, and when their workers registered. Parsl tells all of it through
two methods of a block executor (parsl.executors.status_handling.BlockProviderExecutor), both
wrapped here on the executor itself (not its class), before Parsl starts it:

- `send_monitoring_info(status)`: Parsl calls it with each block whose state changed: from
  `scale_out_facade` (a block requested: PENDING, or FAILED to submit), from `poll_facade`
  (the provider's status, polled every `status_polling_interval`: PENDING in the batch queue,
  RUNNING, COMPLETED ...) and from `scale_in_facade` (blocks cancelled). With monitoring off it
  sends nothing, but is still called.
- `poll_facade()`: the JobStatusPoller calls it every `strategy_period`. After it, while its
  blocks up have fewer workers registered than they hold, at most once a second, the
  interchange is asked for its managers (HTEX's `MANAGERS` command, see `WorkerCount`), and
  a change in the number of registered workers is an event.

Each event goes to every open trace of the session (`Events.listen`) as a plain dict.
"""
from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable

from q2pconf._parsl.statuses import count_every_block
from q2pconf._supervise.interchange import interchange_alive
from q2pconf._supervise.connect import ASK_TIMEOUT  # seconds an interchange has to answer

ASK_EVERY = 1.0  # seconds between questions to an interchange about its workers
UP = ("PENDING", "RUNNING", "HELD", "UNKNOWN")  # block states in which workers may register

Listener = Callable[[dict[str, Any]], None]


class Events:
    """The block and worker events of one session's executors, told to its open traces."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.known: list[dict[str, Any]] = []  # the last event of each (executor, block/kind)

    def listen(self, listener: Listener) -> None:
        """`listener` gets every event from now on, after the state known so far."""
        with self._lock:
            self._listeners.append(listener)
            known = list(self.known)
        for event in known:
            listener({**event, "known": True})  # happened before the run started

    def unlisten(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def tell(self, event: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
            self.known = [e for e in self.known if not _same(e, event)] + [event]
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a trace that cannot write must never stop Parsl's poller
                pass

    def watch(self, executor: Any, label: str) -> None:
        """Record `executor`'s start and, if it has blocks, their events (call before Parsl
        starts it: its first blocks may be requested as it starts)."""
        self.tell({"t": time.time(), "kind": "executor", "executor": label,
                   "class": type(executor).__name__})
        if not hasattr(executor, "send_monitoring_info") or not hasattr(executor, "poll_facade"):
            return  # a thread pool: its threads are there as it starts
        original_send = executor.send_monitoring_info
        original_poll = executor.poll_facade
        workers = WorkerCount(self, executor, label)
        executor.send_monitoring_info = functools.partial(self._sent, label, original_send)
        executor.poll_facade = functools.partial(_polled, original_poll, workers)

    def _sent(self, label: str, original: Callable[[Any], None], status: Any) -> None:
        """Parsl's `send_monitoring_info(status)`: each block's new state, then Parsl's own."""
        now = time.time()
        try:
            for block, state in dict(status).items():
                self.tell({"t": now, "kind": "block", "executor": label, "block": str(block),
                           "state": getattr(getattr(state, "state", None), "name", str(state))})
        finally:
            original(status)


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old.get(key) == new.get(key) for key in ("kind", "executor", "block"))


def _polled(original: Callable[[], None], workers: WorkerCount) -> None:
    """Parsl's `poll_facade()`, every launched block counted (a poll can race with a launch:
    q2pconf._parsl.statuses), then a look at the registered workers."""
    try:
        original()
    finally:
        count_every_block(workers.executor)
        workers.look()


class WorkerCount:
    """The workers registered with one HTEX's interchange. Asked (at most every ASK_EVERY s) only
    while fewer have registered than its blocks up hold: Parsl's command client is shared with
    Parsl, and one answer later than its timeout breaks it for good, so it is asked as rarely as can
    be, with the timeout q2pconf._supervise.connect gives it. A change is an event."""

    def __init__(self, events: Events, executor: Any, label: str) -> None:
        self.events, self.executor, self.label = events, executor, label
        self.count = 0
        self.settled: int | None = None  # blocks up when all their workers were counted
        self._next = 0.0

    def look(self) -> None:
        client = getattr(self.executor, "command_client", None)
        now = time.monotonic()
        up = self._up()
        if client is None or now < self._next or up == self.settled:
            return
        self._next = now + ASK_EVERY
        if not interchange_alive(self.executor):
            return
        try:
            managers = client.run("MANAGERS", timeout_s=ASK_TIMEOUT)
            count = sum(int(m.get("worker_count") or 0) for m in managers)
        except Exception:  # no answer: a dead or closed interchange; asked again later
            return
        if count != self.count:
            self.count = count
            self.events.tell({"t": time.time(), "kind": "workers", "executor": self.label,
                              "workers": count})
        if count >= self._expected(up) and (count > 0 or up == 0):
            self.settled = up

    def _up(self) -> int:
        """Blocks requested and not ended (Parsl sees a block run only at its provider's next
        poll: a LocalProvider's every 5 s)."""
        status = getattr(self.executor, "status_facade", None) or {}
        return sum(1 for s in list(status.values())
                   if getattr(getattr(s, "state", None), "name", "") in UP)

    def _expected(self, up: int) -> float:
        """Workers `up` blocks hold (any count, when Parsl's is not a number)."""
        per_node = getattr(self.executor, "workers_per_node", None)
        nodes = getattr(getattr(self.executor, "provider", None), "nodes_per_block", 1) or 1
        if not isinstance(per_node, (int, float)) or per_node == float("inf"):
            return 0
        return up * int(per_node) * int(nodes)
