"""What a replay (q2pconf._observe.replay) needs, read from a traced run: its steps and body, the
worker slots of the config it ran with, and the time it took.

All times are counted from the pipeline call (`called` in run.json). Measured from the run:
- a step's duration: the wall time of its attempts, from its trace lines;
- the body's work: the time between its calls, less its waits (the events file's `wait` and
  `window` lines); a wait for a step's result is replayed as a wait for that step;
- `result_s`: from a step's end to its dependents (or the body) seeing its result, the median
  over the steps that really waited for an input;
- per executor, `dispatch_s`: from a step being ready to it running, a low quantile (most
  steps of a busy pool also waited for a slot); `start_s`: when its first block was requested
  (with no initial blocks, by a look of the strategy: its looks are counted from there);
  `startup_s`: from a block's request to its first worker taking a step (0 for a thread
  pool, or an executor already up when the run began).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from q2pconf._base.errors import ConfigError
from q2pconf._observe.history import CACHED, DONE
from q2pconf._observe.replay import CALL, WAIT, WORK, Call, Pool, Recording
from q2pconf._observe.runfiles import RunFiles, calls, events, seconds

DONE_STATES = (DONE, CACHED)  # a step that ran to its end, or whose result was reused
THREADS_DEFAULT = 2  # Parsl's ThreadPoolExecutor max_threads
STRATEGY_PERIOD = 0.2  # q2pconf.pipeline._session.SESSION_DEFAULTS, when the config sets none
LOW = 0.1  # the quantile of ready-to-running times taken as an executor's dispatch time


@dataclass
class Replayable:
    """A run ready to replay: `measured_s` is None for a run that did not end."""

    recording: Recording
    pools: dict[str, Pool]
    measured_s: float | None
    body_waits_s: float = 0.0  # the body's waits for results and for room in the window


@dataclass
class _Step:
    number: int
    executor: str
    duration: float
    inputs: list[int]
    submitted: float | None  # seconds from the call
    launched: float | None
    started: float | None
    finished: float | None
    lane: tuple[str, str, str] = ("NA", "NA", "NA")  # host, pid, worker of its last attempt


def from_run(run: RunFiles) -> Replayable:
    """The run's recording and its own config's pools; a ConfigError for a trace that lacks
    what a replay needs."""
    called = run.meta.get("called")
    if not isinstance(called, (int, float)) or any(r["inputs"] == "NA" for r in run.rows):
        raise ConfigError(run.meta_path, "", "was traced by an older q2pconf: its trace has no "
                          "record of which steps waited for which",
                          "run the pipeline again with this q2pconf, then name that run")
    steps = _steps(run.rows, called)
    events = read_events(run, called)
    result_s = _result_time(steps, events)
    pools = {label: own_pool(run.meta, label, steps, events) for label in
             sorted({step.executor for step in steps.values()})}
    recording = Recording({n: Call(n, s.executor, s.duration, tuple(s.inputs))
                           for n, s in steps.items()},
                          _body(run.meta, steps, events, called), result_s, 0.0)
    recording.tail_s = _tail(run.meta, steps, recording, called)
    returned = run.meta.get("returned")
    measured = returned - called if isinstance(returned, (int, float)) else None
    waits = sum(e["until"] - e["t"] for e in events if e.get("kind") in ("wait", "window")
                and e["t"] >= 0)
    return Replayable(recording, pools, measured, waits)


def _steps(rows: list[dict[str, str]], called: float) -> dict[int, _Step]:
    """One _Step per call, its attempts' walls summed, its first attempt's times."""
    found: dict[int, _Step] = {}
    for row in rows:
        number = int(row["call"])
        wall = float(row["wall_s"]) if row["wall_s"] != "NA" else 0.0
        step = found.get(number)
        if step is None:
            found[number] = _Step(number, row["executor"], wall, calls(row["inputs"]) or [],
                                  *(_since(row[key], called) for key in
                                    ("submitted", "launched", "started", "finished")),
                                  lane=(row["host"], row["pid"], row["worker"]))
            continue
        step.duration += wall
        step.executor = row["executor"]
        step.lane = (row["host"], row["pid"], row["worker"])
        if row["status"] in DONE_STATES:
            step.finished = _since(row["finished"], called)
    return found


def _since(stamp: str, called: float) -> float | None:
    value = seconds(stamp)
    return None if value is None else value - called


def read_events(run: RunFiles, called: float) -> list[dict[str, Any]]:
    """The events file's records, their times from the call, in time order (a damaged or
    missing file gives what could be read)."""
    found = []
    for event in events(run):
        try:
            event["t"] = float(event["t"]) - called
            if "until" in event:
                event["until"] = float(event["until"]) - called
        except (ValueError, KeyError, TypeError):
            continue
        found.append(event)
    return sorted(found, key=lambda event: event["t"])


def _body(meta: dict[str, Any], steps: dict[int, _Step], events: list[dict[str, Any]],
          called: float) -> list[tuple[str, float]]:
    """The body's moves: its work between calls and waits, its calls, its waits for steps."""
    marks: list[tuple[float, int, dict[str, Any]]] = []
    for number, step in sorted(steps.items()):
        marks.append((step.submitted or 0.0, 0, {"kind": CALL, "call": number}))
    for event in events:
        if event.get("kind") in ("wait", "window") and not event.get("known"):
            marks.append((event["t"], 1, event))
    moves: list[tuple[str, float]] = []
    cursor = 0.0
    for when, _, mark in sorted(marks, key=lambda item: item[:2]):
        moves.append((WORK, max(when - cursor, 0.0)))
        cursor = max(cursor, when)
        if mark["kind"] == CALL:
            moves.append((CALL, mark["call"]))
            continue
        if mark["kind"] == "wait" and mark.get("call", -1) in steps:
            moves.append((WAIT, mark["call"]))
        cursor = max(cursor, mark["until"])
    ended = meta.get("body_returned")
    if isinstance(ended, (int, float)):
        moves.append((WORK, max(ended - called - cursor, 0.0)))
    return [move for move in moves if move[0] != WORK or move[1] > 0]


def _result_time(steps: dict[int, _Step], events: list[dict[str, Any]]) -> float:
    """From a step's end to its result being used: by a dependent that was waiting for it, or
    by the body waiting for it."""
    gaps = []
    for step in steps.values():
        ends = [steps[i].finished for i in step.inputs if i in steps]
        if not ends or None in ends or step.launched is None or step.submitted is None:
            continue
        last = max(end for end in ends if end is not None)
        if step.submitted < last:
            gaps.append(step.launched - last)
    for event in events:
        waited = steps.get(event.get("call", -1)) if event.get("kind") == "wait" else None
        if waited is not None and waited.finished is not None and event["t"] < waited.finished:
            gaps.append(event["until"] - waited.finished)
    return max(statistics.median(gaps), 0.0) if gaps else 0.0


def _tail(meta: dict[str, Any], steps: dict[int, _Step], recording: Recording,
          called: float) -> float:
    """From the body's return or the last result, whichever came later, to the return."""
    returned, ended = meta.get("returned"), meta.get("body_returned")
    if not isinstance(returned, (int, float)):
        return 0.0
    last = max((s.finished for s in steps.values() if s.finished is not None), default=0.0)
    body = ended - called if isinstance(ended, (int, float)) else 0.0
    return max(returned - called - max(body, last + recording.result_s), 0.0)


def own_pool(meta: dict[str, Any], label: str, steps: dict[int, _Step],
             events: list[dict[str, Any]]) -> Pool:
    """Executor `label`'s worker slots under the config the run used, its start-up measured."""
    spec = ((meta.get("config") or {}).get("executors") or {}).get(label) or {}
    mine = [s for s in steps.values() if s.executor == label]
    dispatch = _dispatch(mine)
    if "max_threads" in spec or "ThreadPool" in str(spec.get("class", "")):
        return Pool(label, int(spec.get("max_threads") or THREADS_DEFAULT), dispatch_s=dispatch)
    provider = spec.get("provider") if isinstance(spec.get("provider"), dict) else {}
    init = int(provider.get("init_blocks", 1))
    start, startup = _startup(label, mine, events, dispatch)
    period = _strategy_period(meta)  # with no initial blocks, its first block came at a
    # look of the strategy: the looks are counted from that one (`start`)
    return Pool(label, _workers_per_block(meta, spec, label, mine, events),
                init_blocks=init, max_blocks=max(int(provider.get("max_blocks", 1)), init),
                start_s=start, startup_s=startup, dispatch_s=dispatch, period_s=period)


def _dispatch(mine: list[_Step]) -> float:
    """From a step being ready and a slot free to it running: per worker, a step's start less
    the later of its launch and the previous step's end on that worker (a low quantile; a
    worker's first step, which may have waited for the worker to start, does not count)."""
    lanes: dict[tuple[str, str, str], list[_Step]] = {}
    for step in mine:
        if step.started is not None and step.launched is not None and step.finished is not None:
            lanes.setdefault(step.lane, []).append(step)
    gaps = []
    for ran in lanes.values():
        ran.sort(key=lambda s: s.started or 0.0)
        for before, step in zip(ran, ran[1:]):
            assert step.started is not None and step.launched is not None
            gaps.append(step.started - max(step.launched, before.finished or 0.0))
    if not gaps:  # one step per worker: each one's wait from its launch
        gaps = [s.started - s.launched for s in mine
                if s.started is not None and s.launched is not None]
    gaps.sort()
    return max(gaps[int(LOW * (len(gaps) - 1))], 0.0) if gaps else 0.0


def _startup(label: str, mine: list[_Step], events: list[dict[str, Any]],
             dispatch: float) -> tuple[float, float]:
    """(when the executor's first block was requested, from then to its workers' first step);
    (0, 0) when a block of it was up before the run."""
    blocks = [e for e in events if e.get("kind") == "block" and e.get("executor") == label]
    if any(e["t"] < 0 and e.get("state") == "RUNNING" for e in blocks):
        return 0.0, 0.0
    requested = next((e["t"] for e in blocks if e.get("state") == "PENDING" and e["t"] >= 0),
                     0.0)
    ran = [s for s in mine if s.started is not None and s.launched is not None]
    if not ran:
        return requested, 0.0
    first = min(ran, key=lambda s: s.started or 0.0)
    assert first.started is not None and first.launched is not None
    if first.started - first.launched > 2 * dispatch + 0.05:  # it waited for a worker
        ready = first.started - dispatch
    else:  # a worker was there before it: when, the workers' count may say
        counted = [e["t"] for e in events if e.get("kind") == "workers"
                   and e.get("executor") == label and e.get("workers")]
        ready = min(counted + [first.launched])
    return requested, max(ready - requested, 0.0)


def _workers_per_block(meta: dict[str, Any], spec: dict[str, Any], label: str,
                       mine: list[_Step], events: list[dict[str, Any]]) -> int:
    """Slots a block gives: the config's (slots_of), else the most workers seen registered,
    else the most steps seen running at once."""
    machine = meta.get("machine") or {}
    cpus = machine.get("cpus") if isinstance(machine.get("cpus"), (int, float)) else None
    memory = machine.get("memory_gb")
    given = slots_of(spec, cpus, memory if isinstance(memory, (int, float)) else None)
    if given is not None:
        return given
    seen = [int(e.get("workers") or 0) for e in events
            if e.get("kind") == "workers" and e.get("executor") == label]
    return max(seen + [_most_at_once(mine), 1])


def slots_of(table: dict[str, Any], cpus: float | None, memory_gb: float | None) -> int | None:
    """Worker slots a block of executor `table` (a config table) gives, None when the config
    does not say: threads; or an HTEX's workers per node (Parsl's pool starts at most
    CPUs / cores_per_worker, and memory / mem_per_worker, on the machine it runs on: for a
    LocalProvider, `cpus` and `memory_gb`) times its nodes per block."""
    if table.get("class") == "ThreadPoolExecutor" or "max_threads" in table:
        return int(table.get("max_threads") or THREADS_DEFAULT)
    if isinstance(table.get("max_workers_per_block"), int) and table["max_workers_per_block"] > 0:
        return int(table["max_workers_per_block"])
    provider = table.get("provider") if isinstance(table.get("provider"), dict) else {}
    local = provider.get("class", "LocalProvider") == "LocalProvider"
    counts = [float(value) for value in (table.get("max_workers_per_node"),
                                         table.get("max_workers"))
              if isinstance(value, (int, float)) and value > 0]
    per_worker, memory = table.get("cores_per_worker") or 1, table.get("mem_per_worker")
    if local and cpus and isinstance(per_worker, (int, float)) and per_worker > 0:
        counts.append(cpus // per_worker)
    if local and memory_gb and isinstance(memory, (int, float)) and memory > 0:
        counts.append(memory_gb // memory)
    if not counts:
        return None
    return max(int(min(counts)), 1) * int(provider.get("nodes_per_block", 1) or 1)


def _most_at_once(mine: list[_Step]) -> int:
    marks = sorted([(s.started, 1) for s in mine if s.started is not None and s.finished]
                   + [(s.finished, -1) for s in mine if s.started is not None and s.finished])
    most = running = 0
    for _, change in marks:
        running += change
        most = max(most, running)
    return most


def _strategy_period(meta: dict[str, Any]) -> float | None:
    """The strategy's period, None under strategy "none" (no blocks added while it runs)."""
    text = (meta.get("config") or {}).get("text")
    options: dict[str, Any] = {}
    if isinstance(text, str):
        from q2pconf._base.tomlfile import read_toml

        try:
            options = read_toml("run.json", text.encode()).get("parsl") or {}
        except ConfigError:
            options = {}
    if str(options.get("strategy", "simple")).lower() == "none":
        return None
    period = options.get("strategy_period", STRATEGY_PERIOD)
    return float(period) if isinstance(period, (int, float)) and period > 0 else STRATEGY_PERIOD


def current(run: RunFiles, found: Replayable | None = None) -> dict[str, Any]:
    """The run's measured time and the replay's prediction for the config it ran with, as
    `q2pconf tune --json` prints them (predicted_s null: some step would never get a slot)."""
    from q2pconf._observe.replay import predict, rounded

    found = from_run(run) if found is None else found
    predicted = predict(found.recording, found.pools)
    return {"predicted_s": rounded(predicted),
            "measured_s": None if found.measured_s is None else round(found.measured_s, 3),
            "steps": len(found.recording.calls),
            "body": {"work_s": round(sum(value for move, value in found.recording.body
                                         if move == WORK), 3),
                     "waits_s": round(found.body_waits_s, 3)},
            "executors": {label: {"slots": pool.slots, "workers_per_block":
                                  pool.workers_per_block, "init_blocks": pool.init_blocks,
                                  "max_blocks": pool.max_blocks,
                                  "start_s": round(pool.start_s, 3),
                                  "startup_s": round(pool.startup_s, 3),
                                  "dispatch_s": round(pool.dispatch_s, 4)}
                          for label, pool in found.pools.items()}}
