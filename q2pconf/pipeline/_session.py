"""Parsl sessions: one per config in use, started lazily, always cleaned up.

A session owns one Parsl DataFlowKernel. It is created by the first pipeline call for a
config, reused by later calls with the same config (and `resume` setting), and closed at
interpreter exit, on SIGTERM/SIGHUP, when Ctrl-C interrupts a pipeline, and when it has been
idle longest and more than IDLE_SESSIONS sessions are idle. A session is never closed by
another thread's choice while a run uses it. Executors start the first time a step is sent
to them, so a pipeline that only uses threads never starts an HTEX interchange or its workers.
"""
from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from q2pconf._supervise import closing, interchange, signals
from q2pconf._base import notice, rundir
from q2pconf.pipeline import _unmatched as unmatched
from q2pconf.config._settings import Settings, checked_digest, choose_executor, load_current
from q2pconf._base.errors import ConfigError
from q2pconf._base.keywords import RUN_KEY, TRACE_KEY
from q2pconf._observe.blocks import Events
from q2pconf._observe import trace as tracing
from q2pconf._supervise.abandon import Abandoned
from q2pconf.pipeline._parallel_config import BLOCK_MAPPING, Choice, in_force

# Seconds a signalled close waits for an executor starting in the background; what is still
# starting after that is ended by q2pconf._parsl.guard when this process is gone.
EARLY_JOIN_ON_SIGNAL = 5.0
# Parsl's first strategy tick starts HTEX blocks; its 5 s default makes the first result slow.
# A tick is cheap: providers cache their job status for their own polling interval.
SESSION_DEFAULTS = {"strategy_period": 0.2}


class Session:
    """One Parsl DataFlowKernel and the executors started in it so far."""

    def __init__(self, key: tuple[Any, ...], settings: Settings | None, parsl_config: Any,
                 mapping: dict[str, str], resume: bool, store: Any = None) -> None:
        from parsl.dataflow.dflow import DataFlowKernel

        self.key = key
        self.settings = settings
        self.mapping = mapping
        self.resume = resume
        self._lock = threading.Lock()
        self._apps: dict[tuple[int, str], Any] = {}
        self.users = 0  # runs using it now; changed under _SESSION_LOCK
        _quiet_parsl_logging()
        rundir.prepare(parsl_config, _run_dir_source(settings))
        self.dfk = _aside(lambda: DataFlowKernel(parsl_config))
        rundir.make_private(self.dfk.run_dir)
        rundir.quiet_log_errors(self.dfk.run_dir)
        if store is not None:  # q2pconf's own resume checkpoint (q2pconf.pipeline._checkpoints)
            store.attach(self.dfk)
        else:  # checkpointing the config sets itself, Parsl's way
            rundir.guard_checkpoints(self.dfk)
        self._ready = set(self.dfk.executors)  # started; Parsl lists one before it is
        self._gates: dict[str, threading.Lock] = {}  # one start at a time, per executor
        self._early: list[threading.Thread] = []  # background starts (`start_early`)
        self._starting: list[Any] = []  # executors whose start has begun (any thread)
        self._failed_early: dict[str, BaseException] = {}
        self.events = Events()  # its executors' block and worker events, for traces
        self.labels = (tuple(settings.labels) if settings is not None
                       else tuple(label for label in self.dfk.executors
                                  if not label.startswith("_")))
        self.closed = False

    @property
    def broken(self) -> bool:
        """Parsl gave up on one of its executors (its blocks failed, or its interchange died):
        later runs get a new session rather than that executor's old error."""
        return any(getattr(executor, "bad_state_is_set", False)
                   for executor in list(self.dfk.executors.values()))

    def label_for(self, name: str, plugin: str | None, hint: str | None) -> str:
        """The executor a step runs on (see `q2pconf.config._settings.choose_executor`)."""
        if hint is not None and hint not in self.labels:
            unmatched.hint(f"{plugin}.{name}" if plugin else name, hint, self.labels)
        return choose_executor(self.mapping, self.labels, name, plugin, hint)

    def app(self, runner: Any, label: str) -> Any:
        """The Parsl app running `runner` on `label`, starting that executor if needed."""
        key = (id(runner), label)
        app = self._apps.get(key)
        if app is None:
            from parsl.app.python import PythonApp

            self._start(label)
            app = self._apps.setdefault(key, PythonApp(
                runner, data_flow_kernel=self.dfk, executors=[label], cache=self.resume,
                ignore_for_cache=[TRACE_KEY, RUN_KEY]))
        return app

    def _start(self, label: str) -> None:
        """Start executor `label` unless it runs; a start under way (in the background) is
        waited for, not repeated, and one that failed there fails here too."""
        if label in self._ready:
            return
        with self._lock:
            gate = self._gates.setdefault(label, threading.Lock())
        with gate:  # a thread pool starting never waits for an HTEX starting
            if label in self._ready:
                return
            if label in self._failed_early:
                raise self._failed_early[label]
            if self.closed:
                raise RuntimeError("q2pconf: the Parsl session was closed")
            if self.settings is None:
                from q2pconf._base.errors import no_such_executor

                raise no_such_executor("<parsl.Config>", "executors", label, self.labels)
            executor = self.settings.executor(label)
            self._starting.append(executor)
            self.events.watch(executor, label)
            blocks = _blocks_now(executor, self.dfk.config.strategy)
            try:
                _aside(lambda: self.dfk.add_executors([executor]), _watch_start(executor, label))
            except BaseException as error:  # every later step of this label fails the same
                self._failed_early.setdefault(label, error)
                raise
            interchange.remember(executor)
            if blocks:  # Parsl's strategy would launch them at its next tick, up to a period on
                executor.scale_out_facade(blocks)
            self._ready.add(label)

    def start_early(self, labels: Iterable[str]) -> None:
        """Start these executors in background threads, while the pipeline's first steps run
        (thread pools start in milliseconds: they are left to the first step needing them).
        `close` waits for a start under way before stopping everything."""
        if self.settings is None or self.closed:
            return
        for label in sorted(set(labels)):
            if (label in self._ready or label not in self.labels or label in self._gates
                    or self.settings.executor_class(label) in closing.THREAD_POOLS):
                continue
            thread = threading.Thread(target=self._start_quietly, args=(label,), daemon=True,
                                      name=f"q2pconf-start-{label}")
            self._early.append(thread)
            thread.start()

    def _start_quietly(self, label: str) -> None:
        try:
            self._start(label)
        except BaseException as error:  # kept for the step that needs it: it fails with this
            self._failed_early.setdefault(label, error)

    def _join_early(self, timeout: float | None) -> None:
        """Wait for background starts: what one starts after `close` would outlive it. Not
        for one whose interchange has already gone (its guard got the group's signal): that
        start can only wait for an answer that never comes, and launches nothing."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._early:
            while thread.is_alive() and not self._interchange_gone():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                thread.join(0.1 if left is None else min(0.1, left))

    def _interchange_gone(self) -> bool:
        """Whether an executor being started lost its interchange (or its guard) already."""
        return not all(interchange.interchange_alive(executor) for executor in list(self._starting))

    def close(self, wait: bool = True) -> None:
        """Stop every executor, within closing.CLOSE_BOUND seconds. With wait=False (a signal,
        Ctrl-C) running steps are abandoned; with wait=True running thread steps finish. Steps
        not yet started never start."""
        if self.closed:
            return
        self.closed = True  # no new start begins; one under way is waited for
        # bounded too: a start waits up to 120 s for an interchange that died while starting
        # (what starts after this is ended by its q2pconf._parsl.guard when the program exits)
        self._join_early(closing.CLOSE_BOUND if wait else EARLY_JOIN_ON_SIGNAL)
        dfk = self.dfk
        closing.bounded(lambda: closing.finish(dfk) if wait else closing.stop(dfk),
                        lambda: closing.kill(dfk))


def _aside(make: Callable[[], Any], check: Callable[[], None] = lambda: None) -> Any:
    """make(), in a thread of its own, while this thread calls check() every 0.1 s: check
    may raise, and then this thread stops waiting for make (left to end in the background).
    The new thread's stack is short, too: Parsl's DataFlowKernel names its workflow after the
    first file on `inspect.stack()`, which reads the source lines of every frame of the
    caller's stack (~50 ms of each session start under a pipeline call)."""
    made: list[Any] = []
    failed: list[BaseException] = []

    def call() -> None:
        try:
            made.append(make())
        except BaseException as error:  # raised again in the caller's thread
            failed.append(error)

    thread = threading.Thread(target=call, name="q2pconf-aside", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
        if thread.is_alive():
            check()
    if failed:
        raise failed[0]
    return made[0]


def _watch_start(executor: Any, label: str) -> Callable[[], None]:
    """What `_aside` checks while `executor` starts: an interchange that died fails the start
    at once; one that has not answered for notice.AFTER seconds is said once."""
    slow = notice.Quiet(lambda seconds: (
        f"executor {label!r} has waited {seconds:.0f} s for its interchange to answer (Parsl "
        "gives up after 120 s): a busy machine or a slow file system holding the environment "
        f"delays it; its log: {_log_path(executor)}"))
    slow.begin()

    def check() -> None:
        _interchange_died_starting(executor)
        slow.look()

    return check


def _log_path(executor: Any) -> str:
    found = interchange.interchange_log(executor) if getattr(executor, "logdir", None) else None
    return found or "in the run directory"


def _interchange_died_starting(executor: Any) -> None:
    """Parsl waits 120 s for the first answer of an interchange that died while starting
    (a port taken, a wrong interpreter, a crash): say so at once, with its log's last lines."""
    process = getattr(executor, "interchange_proc", None)
    if process is None or process.poll() is None:
        return
    text = interchange.interchange_ended(executor)
    raise interchange.InterchangeDied(f"q2pconf: {text} while starting{_log_tail(executor)}")


def _log_tail(executor: Any, lines: int = 5) -> str:
    path = interchange.interchange_log(executor)
    if path is None:
        return ""
    try:
        with open(path, errors="replace") as log:
            tail = log.read()[-4000:].splitlines()[-lines:]
    except OSError:
        return ""
    return "; it last wrote:\n" + "\n".join("  " + line for line in tail) if tail else ""


# Sessions by config: a run holds its session (`using`), so another thread choosing another
# config never closes it; idle sessions are kept for reuse, at most IDLE_SESSIONS of them.
IDLE_SESSIONS = 2
_SESSIONS: dict[tuple[Any, ...], Session] = {}
_SESSION_LOCK = threading.RLock()


@contextmanager
def using(resume: bool = False) -> Iterator[Session]:
    """The session for the config chosen now, held open (against eviction) while in the block."""
    current = _acquire(resume)
    try:
        yield current
    finally:
        with _SESSION_LOCK:
            current.users -= 1
            idle = _surplus(())
        _close_all(idle)


def session(resume: bool = False) -> Session:
    """The session for the config chosen now; reused while the choice is the same."""
    with using(resume) as current:
        return current


def _acquire(resume: bool) -> Session:
    choice = in_force()
    target = choice.target
    settings = (load_current() if target is None
                else target if isinstance(target, Settings) else None)
    mapping = _mapping_in_force(choice, settings)
    key = (_identity(target, settings), tuple(sorted(mapping.items())), resume)
    idle = []
    with _SESSION_LOCK:
        current = _SESSIONS.pop(key, None)  # re-inserted last: the most recently used
        if current is not None and current.users == 0 and current.broken:
            idle.append(current)
            current = None
        if current is None or current.closed:
            current = _new_session(key, target, settings, mapping, resume)
            _install_handlers()
        _SESSIONS[key] = current
        current.users += 1
        idle += _surplus(key)
    _close_all(idle)
    return current


def _surplus(key: tuple[Any, ...]) -> list[Session]:
    """Idle sessions to close (call with the lock held): those whose config file has changed
    since (`key` is the newest for its file) and, oldest first, those beyond IDLE_SESSIONS."""
    idle = [s for s in _SESSIONS.values() if s.users == 0 and not s.closed]
    stale = [s for s in idle if key and s.key[0] != key[0]
             and _file_of(s.key) is not None and _file_of(s.key) == _file_of(key)]
    kept = [s for s in idle if s not in stale]
    doomed = stale + kept[:max(0, len(kept) - IDLE_SESSIONS)]
    for old in doomed:
        del _SESSIONS[old.key]
    return doomed


def _file_of(key: tuple[Any, ...]) -> str | None:
    """The config file a session key was made for (see `_identity`), if any."""
    identity = key[0]
    return identity[1] if identity[0] == "file" else None


def _close_all(doomed: list[Session], wait: bool = True) -> None:
    for old in doomed:
        old.close(wait)


def _mapping_in_force(choice: Choice, settings: Settings | None) -> dict[str, str]:
    """The block's mapping, else the config's own; checked against the executors in force."""
    from q2pconf.config._validate import MAPPING_KEY, check_labels

    if choice.mapping is not None:
        mapping, file = choice.mapping, choice.mapping_file
    elif settings is not None:
        mapping, file = settings.mapping, str(settings.path or settings.plan.file)
    else:
        return {}
    if settings is not None:
        classes = {label: settings.executor_class(label) for label in settings.labels}
    else:
        classes = {e.label: type(e).__name__ for e in choice.target.executors}
    # A mapping given as a dict has no file: its keys are named as the dict spells them.
    check_labels(mapping, classes, file or BLOCK_MAPPING, MAPPING_KEY if file else "")
    return dict(mapping)


def close(wait: bool = True) -> None:
    """Close every session (the next pipeline call starts a new one)."""
    with _SESSION_LOCK:
        doomed = list(_SESSIONS.values())
        _SESSIONS.clear()
    _close_all(doomed, wait)


def _new_session(key: tuple[Any, ...], target: Any, settings: Settings | None,
                 mapping: dict[str, str], resume: bool) -> Session:
    if resume:
        from q2pconf.pipeline import _memo as memo

        memo.register()
    if settings is None:  # a ready parsl.Config
        from q2pconf.config._build import follow_nested_futures

        config = follow_nested_futures(target)
        if not getattr(config.retry_handler, "q2pconf", False):
            config.retry_handler = retry_handler(config.retry_handler)
        return Session(key, None, config, mapping, resume)
    defaults: dict[str, Any] = {**SESSION_DEFAULTS, "retry_handler": retry_handler()}
    store = None
    if resume and not {"memoizer", "checkpoint_mode"} & set(settings.plan.options):
        from q2pconf.config._build import checkpointing

        store = _resuming(settings)
        defaults.update(checkpointing([]))  # Parsl reads none: the store fills its table
    config = settings.parsl_config(labels=[], **defaults)
    return Session(key, settings, config, mapping, resume, store)


def _identity(target: Any, settings: Settings | None) -> tuple[Any, ...]:
    """Equal for the same config, checked from the same bytes of its file (an edit within
    the same second, keeping the size, counts too), so sessions are reused only when safe."""
    if settings is None:
        return ("parsl.Config", id(target))
    if settings.path is None:
        return (settings.source, id(settings.plan) if settings.source == "explicit" else None)
    try:
        return ("file", str(settings.path), checked_digest(settings))
    except ConfigError:  # gone or unreadable since it was read: no later file can match
        return ("file", str(settings.path), None)


def _resuming(settings: Settings) -> Any:
    """The one checkpoint resumed runs with this run_dir share (q2pconf.pipeline._checkpoints)."""
    from q2pconf.pipeline._checkpoints import Store
    from q2pconf._base.paths import runinfo_root

    return Store(settings.plan.options.get("run_dir") or runinfo_root())


def _blocks_now(executor: Any, strategy: Any) -> int:
    """How many blocks to launch as `executor` starts rather than at the strategy's first tick:
    its init_blocks, taken off the provider so that tick launches none. Only for a local
    provider under strategy "none", where launching is instant and the strategy does nothing
    but launch init_blocks once (another strategy scales on its own, from the same thread)."""
    provider = getattr(executor, "provider", None)
    if strategy not in ("none", None) or type(provider).__name__ != "LocalProvider":
        return 0
    blocks, provider.init_blocks = provider.init_blocks, 0
    return int(blocks)


def _run_dir_source(settings: Settings | None) -> str | None:
    """The config file that set run_dir, for an error naming it (None: q2pconf's default)."""
    if settings is None:
        return "<parsl.Config>"
    return settings.plan.file if "run_dir" in settings.plan.options else None


def _quiet_parsl_logging() -> None:
    """Parsl logs to parsl.log in its run_dir; keep it off the user's root handlers, and
    leave out its lines about each task (q2pconf._parsl.tasklog)."""
    from q2pconf._parsl.tasklog import leave_out_per_task_lines

    logging.getLogger("parsl").propagate = False
    leave_out_per_task_lines()


_CLOSER: signals.SignalCloser | None = None


def _install_handlers() -> None:
    """Close the session at exit and on SIGTERM/SIGHUP (when the program has not taken them;
    signals can be taken in the main thread only: a later call from there takes them)."""
    global _CLOSER
    if _CLOSER is None:
        atexit.register(close)
        _CLOSER = signals.SignalCloser(_close_on_signal)
    if threading.current_thread() is threading.main_thread():
        _CLOSER.install()


def _close_on_signal() -> None:
    """In the cleanup thread: the sessions as they are now, without the lock the interrupted
    main thread may hold (copying a dict's values runs in C, under the GIL: it sees the dict
    whole)."""
    _close_all(list(_SESSIONS.values()), wait=False)


@contextmanager
def closed_on_interrupt() -> Iterator[None]:
    """Ctrl-C while waiting on a pipeline closes the session before the interrupt goes on."""
    try:
        yield
    except KeyboardInterrupt:
        with closing.hurried():
            close(wait=False)
        raise


def retry_handler(previous: Any = None) -> Any:
    """A Parsl `retry_handler` writing each failed attempt as it fails, then deciding like
    `previous` (the config's own handler) or like Parsl without one (each failure costs 1)."""
    def handle(error: BaseException, task: dict[str, Any]) -> float:
        try:
            tracing.failed_attempt(error, task)
        except Exception as problem:  # never let the trace change what Parsl does
            tracing.warn_once_untraced(problem)
        if isinstance(error, Abandoned):
            return math.inf  # its run has ended: trying again would only start it
        return 1.0 if previous is None else previous(error, task)

    handle.q2pconf = True  # type: ignore[attr-defined]
    return handle
