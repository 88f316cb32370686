"""The trace of one pipeline run: a TSV line per step attempt, written when the attempt ends.

Files, side by side in Parsl's run directory of the session (`<stem>` is `<pipeline>-<n>`):

- `<stem>.trace.tsv`: one line per attempt (`COLUMNS`), each written with its own `write()`
  call, so a process killed with SIGKILL leaves every line written so far;
- `<stem>.run.json`: the pipeline, the config used, where it came from, the mapping, and
  (rewritten at the end) when and how the run ended. No `finished` time: the run did not end.
  `called` and `returned` (seconds since the epoch) bound the pipeline call itself, session
  start included; `body_returned` is when the body returned (its steps may still run);
- `<stem>.events.jsonl`: a JSON object a line, `t` its time (seconds since the epoch), `kind`
  one of: `executor` (started), `block` (a block's new state, q2pconf._observe.blocks),
  `workers` (the workers registered with an HTEX), `wait` (the body waited from `t` to `until`
  for the result of step call `call`), `window` (the body waited from `t` to `until` for room in
  the window of steps in flight, q2pconf._base.window), `error` (attempt `attempt` of step call
  `call` failed with an `error` saying `message`). An event with `"known": true` happened
  before the run.

Parsl's task records give the task id, executor, attempt and the submitted/launched times;
the rest (`q2pconf._observe.measure.Usage`) is measured inside the step's own process. Empty values
are `NA`, so `column -t` keeps columns aligned and pandas reads them as missing.

Columns: `peak_rss_mib` is the step's own peak when `rss_of` is `step` (a worker process, its
high-water mark reset before the step) and the submitting process's peak so far when `rss_of`
is `process` (thread steps share that process). `cpu_s` is the step's thread (thread steps)
or its worker process and the children it waited for. `inputs` are the call numbers of the
steps whose futures the call was given (its inputs, waited for before it ran), as ranges
(`0-3,7`); `-` for none. Traces written before it have no `inputs` column (read as NA).
`rchar`, `wchar`, `read_bytes`, `write_bytes` (bytes, Linux's /proc/self/io over the attempt)
are its worker process's and the children it waited for, or, for a thread step, the whole
submitting process's meanwhile (as `rss_of` = `process`); NA where not measured. Traces
written before them have no such columns (read as NA).
"""
from __future__ import annotations

import datetime
import functools
import itertools
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from q2pconf._supervise.abandon import Abandoned
from q2pconf._base.errors import warn_once
from q2pconf._base.keywords import TRACE_KEY
from q2pconf._observe.measure import ARRIVED, USAGE_ATTR, Usage
from q2pconf._observe.history import (CACHED, CANCELLED, DEPENDENCY, DONE, status_of,
                                      unfinished_status)
# the trace's columns, which q2pconf._observe.runfiles reads back
from q2pconf._observe.runfiles import COLUMNS

NA = "NA"
_CLEAN = str.maketrans({" ": "_", "\t": "_", "\n": "_"})
_KEYS = itertools.count()
_LIVE: dict[int, Entry] = {}  # call key -> its entry, while not finished


class Entry:
    """What the trace needs of one submitted call, kept only until it finishes (slots: a
    pipeline may have 100,000 calls in flight)."""

    __slots__ = ("trace", "step", "call", "walltime", "future", "inputs")

    def __init__(self, trace: Trace, step: str, call: int, walltime: float | None,
                 inputs: str) -> None:
        self.trace, self.step, self.call, self.walltime = trace, step, call, walltime
        self.inputs = inputs
        self.future: Any = None


def enabled() -> bool:
    """Tracing is on unless Q2PCONF_TRACE=0."""
    return os.environ.get("Q2PCONF_TRACE", "").strip() != "0"


class Trace:
    """The open trace of one pipeline run."""

    def __init__(self, directory: Path, stem: str, meta: dict[str, Any]) -> None:
        self.path = directory / f"{stem}.trace.tsv"
        self.meta_path = directory / f"{stem}.run.json"
        self.events_path = directory / f"{stem}.events.jsonl"
        self.meta = meta
        self._numbers = itertools.count()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                       | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._lock = threading.RLock()  # held while writing: `close` waits for a write
        self._write("\t".join(COLUMNS) + "\n")
        try:  # the stem is this run's (O_EXCL above): an events file left there is replaced
            self._events: int | None = os.open(self.events_path, os.O_WRONLY | os.O_CREAT
                                               | os.O_TRUNC | os.O_APPEND
                                               | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError:
            _quiet_close(self._fd)
            raise
        meta.update(trace=str(self.path), events=str(self.events_path), columns=list(COLUMNS))
        _write_json(self.meta_path, meta)

    def expect(self, step: str, walltime: float | None, inputs: str = NA) -> int:
        """Register a call about to be submitted, given the steps of `inputs` (call numbers,
        `runs.calls_text`); returns the key the Runner gets."""
        key = next(_KEYS)  # next() on a count is atomic: no lock
        _LIVE[key] = Entry(self, step, next(self._numbers), walltime, inputs)
        return key

    def number(self, key: int) -> int:
        """The call number of a call `expect` registered (-1 once it is finished)."""
        found = _LIVE.get(key)
        return -1 if found is None else found.call

    def event(self, event: dict[str, Any]) -> None:
        """Write one line of the events file (rare: blocks, workers, the body's waits)."""
        try:
            line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
            with self._lock:
                if self._events is not None:
                    os.write(self._events, line.encode())
        except Exception as problem:  # a full disk must not fail the pipeline
            self._give_up(problem)

    def watch(self, key: int, future: Any) -> None:
        """The future Parsl returned for the call: its line is written when it is done (and a
        `cancelled` line from it, should the run end first)."""
        found = _LIVE.get(key)
        if found is not None:
            found.future = future
        future.add_done_callback(functools.partial(self.finished, key))

    def finished(self, key: int, future: Any) -> None:
        """The call's future is done: write its successful attempt (failures were written by
        `retry_handler` as they happened). Under the lock: `close` must not shut the file
        between taking the call and writing its line."""
        with self._lock:
            found = _LIVE.pop(key, None)
            usage = ARRIVED.pop(key, None)
            if found is None or future.exception() is not None:
                return
            record = getattr(future, "task_record", {})
            status = CACHED if record.get("from_memo") else DONE
            self.record(found, record, status, None, usage)

    def record(self, entry: Entry, task: dict[str, Any], status: str,
               error: str | BaseException | None, usage: Usage | None) -> None:
        """Write one attempt's line; a failed attempt's message goes to the events file (the
        trace's fields hold no spaces, so that `column -t` lines them up)."""
        try:
            line = self._line(entry, task, status, error, usage)
            with self._lock:
                self._write(line)
        except Exception as problem:  # a full disk must not fail the pipeline
            self._give_up(problem)
        if isinstance(error, BaseException):
            self.event({"t": round(time.time(), 4), "kind": "error", "call": entry.call,
                        "attempt": task.get("try_id", 0) + 1, "error": type(error).__name__,
                        "message": _message(error)})

    def _line(self, entry: Entry, task: dict[str, Any], status: str,
              error: str | BaseException | None, usage: Usage | None) -> str:
        """One line of the trace: one f-string, as this runs once per step. `error`: the
        exception of a failed attempt, or a type's name: its name is the `error` field."""
        when = self._when
        kind = error if isinstance(error, str) else NA if error is None else type(error).__name__
        if usage is None:
            ended = task.get("try_time_returned") or task.get("time_returned")
            measured = f"NA\t{when(ended)}\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA"
            io = "NA\tNA\tNA\tNA"
        else:
            started, wall, worker = usage.started, usage.wall, usage.worker
            if " " in worker or "\t" in worker or "\n" in worker:
                worker = worker.translate(_CLEAN)
            measured = (f"{_iso(started)}\t{_iso(started + wall)}\t{wall:.3f}\t{usage.cpu:.3f}"
                        f"\t{_mib(usage.peak_kib)}\t{usage.scope}\t{usage.host}\t{usage.pid}"
                        f"\t{worker}\t{usage.job or NA}")
            counted = usage.io
            io = "NA\tNA\tNA\tNA" if counted is None else \
                f"{counted[0]}\t{counted[1]}\t{counted[2]}\t{counted[3]}"
        limit = NA if entry.walltime is None else f"{entry.walltime:g}"
        return (f"{entry.step}\t{entry.call}\t{task.get('id', NA)}\t{task.get('try_id', 0) + 1}"
                f"\t{task.get('executor', NA)}\t{status}\t{kind}"
                f"\t{when(task.get('time_invoked'))}\t{when(task.get('try_time_launched'))}"
                f"\t{measured}\t{limit}\t{entry.inputs}\t{io}\n")

    def _when(self, value: datetime.datetime | None) -> str:
        return NA if value is None else _iso(value.timestamp())

    def _write(self, text: str) -> None:
        fd = self._fd
        if fd is not None:
            os.write(fd, text.encode())

    def _give_up(self, problem: BaseException) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            events, self._events = self._events, None
        if events is not None:
            _quiet_close(events)
        if fd is not None:
            _quiet_close(fd)
            from q2pconf._base.rundir import cannot_write

            cannot_write(str(self.path.parent), _reason(problem))

    def close(self, outcome: str) -> None:
        """The run ended: its calls still unfinished are `cancelled`; `run.json` says how it
        ended."""
        mine = [(key, found) for key, found in list(_LIVE.items()) if found.trace is self]
        for key, entry in sorted(mine, key=lambda item: item[1].call):
            future = entry.future
            if future is not None and future.done():  # its callback has not run yet
                self.finished(key, future)
                continue
            with self._lock:
                if _LIVE.pop(key, None) is None:
                    continue
                ARRIVED.pop(key, None)
                task = dict(getattr(future, "task_record", None) or {})
                task.setdefault("time_returned", datetime.datetime.now())
                status = unfinished_status(future)  # dependency_failed: Parsl would fail it
                self.record(entry, task, status, "DependencyError" if status == DEPENDENCY
                            else None, None)
        with self._lock:
            fd, self._fd = self._fd, None
            events, self._events = self._events, None
        for each in (fd, events):
            if each is not None:
                _quiet_close(each)
        self.meta.update(finished=_now(), outcome=outcome, calls=next(self._numbers),
                         returned=time.time())
        try:
            _write_json(self.meta_path, self.meta)
        except OSError as problem:
            from q2pconf._base.rundir import cannot_write

            cannot_write(str(self.meta_path.parent), _reason(problem))


def failed_attempt(error: BaseException, task: dict[str, Any]) -> None:
    """Write a failed attempt of a traced step (Parsl's retry handler tells it:
    q2pconf.pipeline._session.retry_handler)."""
    key = (task.get("kwargs") or {}).get(TRACE_KEY)
    found = None if key is None else _LIVE.get(key)
    if found is None:
        return
    kind = type(error).__name__
    status = status_of(error)
    final = status if status == DEPENDENCY or isinstance(error, Abandoned) else None
    if final is not None:  # Parsl never retries either: its one line, here or by `Trace.close`
        with found.trace._lock:
            if _LIVE.pop(key, None) is None:
                return
        ARRIVED.pop(key, None)
        found.trace.record(found, task, final, kind if final == DEPENDENCY else None, None)
        return
    usage = getattr(error, USAGE_ATTR, None)
    found.trace.record(found, task, status, None if status == CANCELLED else error,
                       usage if isinstance(usage, Usage) else None)


def start(session: Any, pipeline: str, called: float | None = None) -> Trace | None:
    """Open the trace of a new run of `pipeline` in the session's run directory, or warn once
    and return None when it cannot be written. `called`: when the pipeline was called."""
    if not enabled():
        return None
    from q2pconf._observe import measure
    from q2pconf._base.paths import unkept_reason

    measure.HOME_PID = os.getpid()  # steps running in this process are thread steps
    measure.open_files()
    directory = Path(session.dfk.run_dir)
    if unkept_reason(str(directory)) is not None:
        return None  # q2pconf._base.rundir said once why this run keeps no trace
    try:
        meta = {**run_meta(session, pipeline), "called": called or time.time()}
        trace = _new_trace(directory, pipeline, meta)
    except OSError as problem:
        _warn_once(f"no trace of this run is kept ({_reason(problem)}). Fix: point "
                   "XDG_CACHE_HOME, or run_dir under [parsl], at a writable directory")
        return None
    _index(trace)
    return trace


def _new_trace(directory: Path, pipeline: str, meta: dict[str, Any]) -> Trace:
    """A trace named `<pipeline>-<n>`, n one more than the runs already in `directory`, or
    the next free number when another pipeline of the session took it meanwhile."""
    number = 1 + sum(1 for name in os.listdir(directory) if name.endswith(".run.json"))
    while True:
        try:
            return Trace(directory, f"{pipeline}-{number}", meta)
        except FileExistsError:
            number += 1


def run_meta(session: Any, pipeline: str) -> dict[str, Any]:
    """What `run.json` holds when a run starts: who ran what, with which config."""
    from q2pconf._base.cpus import machine, usable_cpus
    from q2pconf._observe.runfiles import batch_nodes, config_meta

    cpus, memory_gb = machine()  # what a tuned config must fit on this machine (q2pconf tune)
    config = config_meta(session)
    here: dict[str, Any] = {"cpus": cpus, "usable_cpus": usable_cpus(), "memory_gb": memory_gb}
    nodes = batch_nodes(config.get("executors") or {})
    if nodes:  # ... and on the batch provider's nodes
        here["batch_nodes"] = nodes
    return {"pipeline": pipeline, "started": _now(), "finished": None, "outcome": None,
            "host": socket.gethostname(), "pid": os.getpid(), "user": _user(),
            "argv": list(sys.argv), "python": sys.version.split()[0],
            "run_dir": str(session.dfk.run_dir), "config": config,
            "machine": here}


def _index(trace: Trace) -> None:
    """Remember the run for `q2pconf info --runs` and `q2pconf report` (best effort)."""
    from q2pconf._observe.runfiles import index_path

    from q2pconf._base.paths import make_private_dirs

    try:
        path = index_path()
        make_private_dirs(str(path.parent))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(f"{trace.meta['started']}\t{trace.meta_path}\n")
    except OSError:
        pass  # the trace itself is kept; only the shortcut to it is missing


_SECOND: tuple[int, str, str] = (-1, "", "")  # the last second formatted, and its parts


MESSAGE_LIMIT = 2000  # characters of a failed attempt's message the events file keeps


def _message(error: BaseException) -> str:
    """What a failed attempt said, cut to MESSAGE_LIMIT characters."""
    text = str(error).strip()
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 3] + "..."


def _iso(seconds: float) -> str:
    """Local ISO 8601 time with milliseconds and UTC offset; the date part is formatted once
    per second (a trace line has four times: this is most of its cost)."""
    global _SECOND
    whole = int(seconds)
    cached = _SECOND
    if cached[0] != whole:
        local = time.localtime(whole)
        offset = time.strftime("%z", local)
        cached = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", local),
                  f"{offset[:3]}:{offset[3:]}" if offset else "")
        _SECOND = cached  # one assignment: threads never see a half-updated pair
    return f"{cached[1]}.{int((seconds - whole) * 1000):03d}{cached[2]}"


def _mib(kib: int | None) -> str:
    return NA if kib is None else f"{kib / 1024:.1f}"


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` atomically: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(partial, path)


def _quiet_close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _reason(problem: BaseException) -> str:
    return getattr(problem, "strerror", None) or str(problem) or type(problem).__name__


def warn_once_untraced(problem: BaseException) -> None:
    """A failed step could not be traced: said once, with the first trace problem's rule."""
    _warn_once(f"a failed step could not be traced ({_reason(problem)})")


def _warn_once(message: str) -> None:
    warn_once(message, key=_warn_once)  # the first trace problem of the process only
