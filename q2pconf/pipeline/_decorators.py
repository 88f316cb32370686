"""`@step` and `@parallel_pipeline`: a pipeline body that sends its steps to Parsl.

The body runs in the caller's thread. Each step call inside it becomes a Parsl app and returns
a future at once; futures passed to later steps (also nested in lists, tuples, sets and dicts:
see q2pconf._base.nested) are waited on by Parsl before those steps run. Only the outermost pipeline
call waits, and it returns plain values. Inside a running step (on any executor, or serially)
a step call is a plain call, and a pipeline runs as `run.serial` does, in that step.
"""
from __future__ import annotations

import contextvars
import functools
import os
import reprlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, MethodType, ModuleType
from typing import Any, TypeVar, overload

from q2pconf._supervise import closing, signals
from q2pconf._base.errors import shallow
from q2pconf._base import nested
from q2pconf._base import notice
from q2pconf.pipeline import _shapes as shapes
from q2pconf.pipeline import _session as sessions
from q2pconf.pipeline import _unmatched as unmatched
from q2pconf._base import window
from q2pconf._observe import trace as tracing
from q2pconf._base.futures import WAITS, Release, StepFuture
from q2pconf._observe.history import (CANCELLED, DEPENDENCY, FAILED, STATES, History, StepRecord,
                                      status_of, unfinished_status)
from q2pconf._base.keywords import CODE_KEY, RUN_KEY, TRACE_KEY
from q2pconf._supervise.abandon import Marker
from q2pconf._observe.progress import Progress
from q2pconf._observe.runfiles import calls_text
from q2pconf._supervise.connect import ConnectWatches
from q2pconf._supervise.watchdog import Watchdog, pool_failed
from q2pconf.pipeline._transport import (Runner, global_names, inside_step, on_worker,
                                         refuse_while_loading, step_depth,
                                         steps_in_other_threads, steps_running)

F = TypeVar("F", bound=Callable[..., Any])
SERIAL_LABEL = "(serial)"  # the executor a serial run's history names
_ACTIVE: contextvars.ContextVar[Any] = contextvars.ContextVar("q2pconf_run", default=None)


class Step:
    """A function that runs as a Parsl app inside a pipeline, and as itself outside one."""

    def __init__(self, func: Callable[..., Any], executor: str | None = None,
                 outputs: int | None = None, plugin: str | None = None,
                 walltime: float | None = None) -> None:
        func, binds = shapes.unwrap_binding(func)  # see q2pconf.pipeline._shapes
        shapes.refuse_unrunnable(func)
        # a function's attributes, as functools.wraps copies them; not a callable object's
        functools.update_wrapper(self, func, updated=functools.WRAPPER_UPDATES
                                 if isinstance(func, FunctionType) else ())
        module, qualname, name = shapes.naming(func)
        self.__module__, self.__qualname__, self.__name__, self.name = (module, qualname,
                                                                        name, name)
        self._binds = binds
        self.func = func
        self.executor = executor
        self.outputs = outputs
        self.walltime = walltime
        self.plugin = plugin or module.rpartition(".")[2]
        self.runner = Runner(func, self)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        """As a method: bound to its instance (or class), as a function is."""
        if self._binds == "class":
            return MethodType(self, objtype if objtype is not None else type(obj))
        if obj is None or self._binds == "static":
            return self
        return MethodType(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = _ACTIVE.get()
        if run is None or inside_step():  # inside a running step: a plain call, in every mode
            return self.func(*args, **kwargs)
        return run.submit(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<q2pconf step {self.plugin}.{self.name}>"

    def _sent_as(self) -> tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]:
        """How a worker that rebuilds this step by value wraps it again (_transport)."""
        options = {key: getattr(self, key, None)
                   for key in ("executor", "outputs", "plugin", "walltime")}
        return self.runner.func, step, options


@overload
def step(func: F) -> F: ...


@overload
def step(*, executor: str | None = None, outputs: int | None = None,
         plugin: str | None = None, walltime: float | None = None) -> Callable[[F], F]: ...


def step(func: Any = None, *, executor: str | None = None, outputs: int | None = None,
         plugin: str | None = None, walltime: float | None = None) -> Any:
    """Mark a pipeline step. `executor` is a hint the config's mapping overrides; `outputs=N` makes
    a call return N futures, one per element of the returned tuple; `plugin` names the step's group
    in QIIME 2's nested mapping (default: the last part of its module's name); `walltime` seconds is
    Parsl's time limit for one run of the step (it raises `parsl.app.errors.AppTimeout`; on the HTEX
    the processes the step started are killed then, a thread step waiting in C code is stopped only
    when it returns to Python). Any callable can be a step (see q2pconf.pipeline._shapes); generator
    and `async def` functions are refused."""
    def decorate(function: Callable[..., Any]) -> Step:
        return Step(function, executor, outputs, plugin, walltime)

    return decorate if func is None else decorate(func)


class Pipeline:
    """A pipeline function: its outermost call runs it in parallel and returns plain values."""

    def __init__(self, func: Callable[..., Any], resume: bool = False,
                 report: bool = False) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.resume = resume
        self.report = report
        self.history: Sequence[StepRecord] = ()
        self.trace_path: Path | None = None  # the last run's trace (q2pconf._observe.trace)
        self.report_path: Path | None = None

    def _sent_as(self) -> tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]:
        """How a worker that rebuilds this pipeline by value wraps it again (_transport)."""
        return self.func, parallel_pipeline, {}

    @shallow
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        called = time.time()  # the run's time counts from here (q2pconf._observe.replay)
        refuse_while_loading()
        if inside_step() or on_worker():  # a step holds a worker: its steps run here, in turn
            return self._serially(SerialRun(), args, kwargs)
        if _ACTIVE.get() is not None:  # nested, or serial: run inline
            return self.func(*args, **kwargs)
        with signals.Interrupts() as interrupts:  # Ctrl-C never lands inside Parsl's locks
            with interrupts.shielded(), sessions.using(self.resume) as session:
                # held: no other thread closes it meanwhile. An HTEX the body's steps will
                # need starts now, beside its first thread steps.
                session.start_early(session.label_for(s.name, s.plugin, s.executor)
                                    for s in steps_named(self.func))
                run = Run(session, tracing.start(session, self.__name__, called), interrupts)
                with interrupts.exposed():
                    return self._run(run, args, kwargs)

    def _run(self, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token, waits = _ACTIVE.set(run), WAITS.set(run.body_waits)
        outcome = "failed"
        signals.CALLS.begin()
        try:
            with sessions.closed_on_interrupt(), run.progress:
                body = self.func(*args, **kwargs)
                run.body_returned()
                value = run.resolve(body)
            unmatched.unused_keys(run.session.mapping, run.ran(), self.__name__)
            outcome = "done"
            return value
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                outcome = "interrupted"
            elif signals.SIGNALLED.is_set():
                outcome = "terminated"  # SIGTERM or SIGHUP: the failure is its doing
            run.abandon()  # what has not started never starts
            raise
        finally:
            _ACTIVE.reset(token)
            WAITS.reset(waits)
            run.stop_recording()
            run.settle_history()
            self.history = run.history
            self._end_trace(run.trace, outcome)
            signals.CALLS.end()
            # A signal ending the program cancels its steps: the failure that follows is no
            # news (a CancelledError traceback would hide the signal). Die of the signal here.
            signals.await_signal_death()

    def _end_trace(self, trace: tracing.Trace | None, outcome: str) -> None:
        """Finish the run's trace, and write its report when asked to."""
        self.trace_path = self.report_path = None
        if trace is None:
            return
        trace.close(outcome)
        self.trace_path = trace.path
        if self.report or os.environ.get("Q2PCONF_REPORT", "").strip() not in ("", "0"):
            from q2pconf._observe.report import write_report

            self.report_path = write_report(trace.meta_path)
            print(f"q2pconf: report: {self.report_path}", file=sys.stderr)

    def serial(self, *args: Any, **kwargs: Any) -> Any:
        """Run the same pipeline one step after another, without Parsl (for debugging)."""
        run = SerialRun()
        try:
            return self._serially(run, args, kwargs)
        finally:
            self.history = run.records

    def _serially(self, run: SerialRun, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The body run in this thread, its steps by `run`. Also how a pipeline called inside
        a running step runs: waiting there for other workers could wait for ever (a pool of
        one is held by that step), and a worker process cannot start a Parsl of its own. Such
        a run leaves `history` and the trace to the outermost run (its step is in them)."""
        token = _ACTIVE.set(run)
        try:
            with step_depth(0):  # the body's step calls are its own, even inside a step
                return nested.unwrap(self.func(*args, **kwargs))
        finally:
            _ACTIVE.reset(token)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else functools.partial(self, obj)


def steps_named(func: Callable[..., Any], seen: set[int] | None = None) -> list[Step]:
    """The steps a pipeline body names: its globals and names read from modules it names,
    and those of pipelines it calls. Known before the body runs, they tell which executors a
    call will likely need (a body reaching steps otherwise just starts them when called)."""
    seen = set() if seen is None else seen
    code = getattr(func, "__code__", None)
    if code is None or id(func) in seen:
        return []
    seen.add(id(func))
    names = global_names(code)
    space = getattr(func, "__globals__", {})
    found: list[Step] = []
    for name in names:
        value = space.get(name)
        reached = ([getattr(value, n, None) for n in names] if isinstance(value, ModuleType)
                   else [value])
        for item in reached:
            if isinstance(item, Step):
                found.append(item)
            elif isinstance(item, Pipeline):
                found += steps_named(item.func, seen)
    return found


def parallel_pipeline(func: Any = None, *, resume: bool = False, report: bool = False) -> Any:
    """Make `func` a pipeline whose `@step` calls run in parallel through Parsl.

    `resume=True` reuses results of steps whose inputs and code are unchanged since an
    earlier run (Parsl's memoizer and checkpoint files). Every run writes a trace (see
    `q2pconf._observe.trace`); `report=True` (or Q2PCONF_REPORT=1) also writes its HTML report."""
    def decorate(function: Callable[..., Any]) -> Pipeline:
        return Pipeline(function, resume, report)

    return decorate if func is None else decorate(func)


class Run:
    """The steps one outermost pipeline call submitted: how many still run, where and when each ran
    (`history`, compact), and the first step that failed. Nothing of a step's Parsl task is kept
    once it finished: 100,000 steps fit in a few MB. The thread running the body waits in a step
    call while a window of steps is in flight (q2pconf._base.window; steps waiting for their
    inputs are not), until about half remain; no other thread ever waits there (one running a step,
    or the user's own threads: in a pool whose threads are all taken, that could wait for ever)."""

    def __init__(self, session: sessions.Session, trace: tracing.Trace | None = None,
                 interrupts: signals.Interrupts | None = None) -> None:
        self.session = session
        self.trace = trace
        self.interrupts = interrupts or signals.Interrupts()
        self.history = History()
        self._pending: dict[int, Future[Any]] = {}  # Parsl's futures of steps not finished
        self.marker = Marker(session.dfk.run_dir)  # see q2pconf._supervise.abandon
        self._fingerprints: dict[Runner, str] = {}
        self._ran: set[tuple[str, str]] = set()  # (plugin, name) of the steps submitted
        self.failure: BaseException | None = None
        self.progress = Progress(running=functools.partial(_launched, session))
        self._changed = threading.Condition()  # a step finished, or failed
        self._running = 0  # submitted steps whose done-callback has not finished
        self._finished = 0  # steps whose done-callback has finished
        self._held = notice.Quiet(self._held_text)  # the body held by the window: said once
        self._last = notice.Quiet(self._last_text)  # no step finishing at the end: said once
        self._running_on: dict[str, int] = {}  # label -> its running steps
        self._release = Release()  # Parsl's finished tasks, freed as soon as Parsl is done
        self._blocked = 0  # submitted steps still waiting for an input: not in flight yet
        self._wake_at = 0  # `_settled` wakes the waiting thread when _in_flight() falls to it
        self._window = window.size(session.dfk.executors)  # raises early on a bad variable
        # the body's thread, the one that waits for room (never a step's: a pipeline called
        # inside a running step runs serially, in Pipeline.__call__, and makes no Run)
        self._body = threading.get_ident()
        self.watchdog = Watchdog(session.dfk)
        settings = session.settings
        self.reach = ConnectWatches(str(settings.path) if settings and settings.path else None)
        if trace is not None:  # what a replay needs besides the steps (q2pconf._observe.replay)
            session.events.listen(trace.event)

    def body_waits(self, call: int, began: float, ended: float | None) -> None:
        """The body began (`ended` None) or ended waiting for the result of step call `call`
        (q2pconf._base.futures.WAITS): for the progress estimate, and the trace's record."""
        self.progress.waiting(ended is None)
        if ended is not None and self.trace is not None:
            self.trace.event({"t": round(began, 4), "kind": "wait", "call": call,
                              "until": round(ended, 4)})

    def body_returned(self) -> None:
        """The body has returned: what is left is the wait for its steps."""
        if self.trace is not None:
            self.trace.meta["body_returned"] = time.time()

    def stop_recording(self) -> None:
        if self.trace is not None:
            self.session.events.unlisten(self.trace.event)

    def submit(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self.interrupts.shielded():
            return self._submit(step, args, kwargs)

    def _submit(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._window is not None and threading.get_ident() == self._body:
            if self._in_flight() >= self._window:
                self._make_room()
            self._count_blocked(args, kwargs)
        label = self.session.label_for(step.name, step.plugin, step.executor)
        app = self.session.app(step.runner, label)
        call = Call(step, args, kwargs, label, self.history.submitted(step.name, label))
        inputs = tracing.NA if self.trace is None else _inputs(args, kwargs)
        kwargs = {**shapes.escape(kwargs), RUN_KEY: self.marker.path}  # Parsl's: never the user's
        if step.walltime is not None:
            kwargs["walltime"] = step.walltime
        if self.session.resume:  # Parsl's memoizer hashes a function by name only
            kwargs[CODE_KEY] = self._fingerprint(step.runner)
        trace = self.trace  # no trace (an unwritable run_dir): the key is None, but there,
        # since Parsl's memoizer (resume) fails on a missing one of its ignore_for_cache keys
        key = None if trace is None else trace.expect(f"{step.plugin}.{step.name}",
                                                      step.walltime, inputs)
        number = -1 if key is None else trace.number(key)  # type: ignore[union-attr]
        kwargs[TRACE_KEY] = key
        with self._changed:
            self._running += 1
            self._running_on[label] = self._running_on.get(label, 0) + 1
            self._ran.add((step.plugin, step.name))
        try:
            future = app(*args, **kwargs)
        except BaseException:
            self._settled(label)
            raise
        # The caller's futures take the outcome first: a wrong number of outputs is a failure
        # recorded before `_done` lets `resolve` see this step as finished.
        handed = (StepFuture(number).follow(future) if step.outputs is None
                  else self._split(future, call, number))
        with self._changed:
            self._pending[call.index] = future
        future.add_done_callback(functools.partial(self._done, call))
        if trace is not None:
            trace.watch(key, future)
        self.progress.submitted()
        return handed

    def _fingerprint(self, runner: Runner) -> str:
        """The step's fingerprint, worked out once per run: a module's values may change
        between two runs in one program."""
        found = self._fingerprints.get(runner)
        if found is None:
            found = self._fingerprints[runner] = runner.code_digest()
        return found

    def _split(self, parent: Future[Any], call: Call, number: int) -> tuple[StepFuture, ...]:
        """One future per declared output of `parent`'s returned tuple (call `number`)."""
        step = call.step
        children = tuple(StepFuture(number) for _ in range(step.outputs or 0))

        def copy(done: Future[Any]) -> None:
            error = done.exception()
            value = None if error is not None else done.result()
            if error is None:
                error = _outputs_error(step, value)
                if error is not None:
                    self._failed_with(error, call)
            for index, child in enumerate(children):
                if error is None:
                    child.set_result(value[index])  # type: ignore[index]
                else:
                    child.set_exception(error)

        parent.add_done_callback(copy)
        return children

    def _done(self, call: Call, future: Future[Any]) -> None:
        try:
            started, ended, state = _times(future)
            error = future.exception()
            status = None if error is None else status_of(error)
            self.history.finished(call.index, started, ended, state if status is None else
                                  STATES[status])
            self.progress.finished(failed=status == FAILED, unrun=status in (CANCELLED, DEPENDENCY))
            if error is not None:
                self._failed(error, call)
            elif not self.session.resume:  # with resume, Parsl's memoizer keeps the task
                self._release.let_go(future)
        finally:
            self._settled(call.label, call.index)

    def _failed(self, error: BaseException, call: Call) -> None:
        """A step's Parsl future failed (Parsl's errors imported here: not once per step)."""
        from parsl.dataflow.errors import DependencyError
        from parsl.executors.errors import BadStateException
        from parsl.serialize.errors import SerializationError

        # A DependencyError only says an earlier step failed: that step's own error has
        # been (or is being) reported by its own callback, and is the one the user must see.
        if isinstance(error, DependencyError):
            return
        if isinstance(error, BadStateException):  # Parsl gave up on the blocks
            error = pool_failed(self.session.dfk.executors.get(call.label), call.label, error)
        if isinstance(error, SerializationError):  # an argument cannot be pickled: which one
            error = shapes.unsendable(call.step.func, f"executor {call.label!r}",
                                      nested.unwrap(call.args), nested.unwrap(call.kwargs), error)
        self._failed_with(error, call)

    def _settled(self, label: str, index: int | None = None) -> None:
        """A step's callback has run (or its submission failed): one fewer to wait for. The
        waiting thread is woken only when none is left, or when the count falls to the low
        mark it waits for in a step call (not once per step)."""
        with self._changed:
            self._pending.pop(index, None)  # Parsl's task goes with its future
            self._running -= 1
            self._finished += 1
            self._running_on[label] -= 1
            if self._running == 0 or (self._wake_at and self._in_flight() <= self._wake_at):
                self._changed.notify_all()

    def _failed_with(self, error: BaseException, call: Call) -> None:
        _add_note(error, f"q2pconf: in {call.where()}")
        with self._changed:
            if self.failure is None:
                self.failure = error
                self._changed.notify_all()

    def resolve(self, value: Any) -> Any:
        """Wait for every submitted step, then replace futures in `value` by their results.

        The first failing step's own exception is raised as soon as it is known; steps still
        running are abandoned, not waited for."""
        with self.interrupts.shielded():
            return self._resolve(value)

    def _resolve(self, value: Any) -> Any:
        self.progress.waiting(True)  # the body has called all its steps: time left can show
        self._last.begin(self._finished)
        self._wait_until(lambda: self._running == 0, lambda: self._last.look(self._finished))
        return nested.unwrap(value)

    def _last_text(self, waited: float) -> str:
        left = self._running
        return (f"the pipeline has waited {waited:.0f} s for its last {left} "
                f"step{'s' if left != 1 else ''}, and none has finished meanwhile. Long steps "
                "need nothing; one that should have ended may wait for something that never "
                "comes (a file, a lock, a queue), and Ctrl-C ends the run" + _own_thread_hint())

    def _make_room(self) -> None:
        """In the body's thread, with a window of steps in flight: wait until about half of
        them are left (hysteresis: the body then submits half a window without waiting). The
        window is worked out again: an executor may have started since."""
        self._window = window.size(self.session.dfk.executors)
        if self._window is None or self._in_flight() < self._window:
            return
        with self._changed:
            self._wake_at = self._window // 2
        # a while with no step finishing is said once: a step may wait for the body
        self._held.begin(self._finished)
        began = time.time()
        try:
            self._wait_until(lambda: self._in_flight() <= self._wake_at,
                             lambda: self._held.look(self._finished))
        finally:
            with self._changed:
                self._wake_at = 0
            if self.trace is not None:
                self.trace.event({"t": round(began, 4), "kind": "window",
                                  "until": round(time.time(), 4), "window": self._window})

    def _held_text(self, waited: float) -> str:
        return (f"the pipeline body has waited {waited:.0f} s for room in the window of "
                f"{self._window} steps in flight, and no step has finished meanwhile. Long "
                "steps need nothing: the body goes on as they finish. But a step that waits "
                "for something the body does later (an event, a file, a queue) never gets it: "
                f"set {window.WINDOW_VAR}=N above the steps the body calls before that, or "
                f"{window.WINDOW_VAR}=0 to lift the bound")

    def _in_flight(self) -> int:
        """Steps the executors hold or will at once: submitted, unfinished, inputs ready. A
        fan-out waiting for one long step is not counted: it must not hold back the body's
        later, independent steps (a branch of hours that could run beside that step)."""
        return self._running - self._blocked

    def _count_blocked(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A step about to be submitted with unfinished inputs counts as blocked until the
        last of them is done (whatever its outcome: `awaited` gives one future for them)."""
        waits = [f for f in nested.awaited((args, kwargs)) if not f.done()]
        if not waits:
            return
        with self._changed:
            self._blocked += 1
        waits[0].add_done_callback(self._unblocked)  # one done meanwhile calls back at once

    def _unblocked(self, _: Any) -> None:
        with self._changed:
            self._blocked -= 1

    def _wait_until(self, ready: Callable[[], bool],
                    meanwhile: Callable[[], None] = lambda: None) -> None:
        """The run's one way to wait for its steps, until `ready()` (read under the lock).
        Meanwhile a pending Ctrl-C is raised within half a second, the first step's failure
        at once, a session closed by a signal raises, and the watchdog and the workers'
        reach are checked (a run that can never finish fails saying why), and `meanwhile`
        is called (outside the lock)."""
        while True:
            self.interrupts.raise_pending()
            with self._changed:
                if self.failure is not None:
                    raise self.failure
                if self.session.closed:  # by a signal, the run then dies of it (`_run`)
                    raise RuntimeError("q2pconf: the Parsl session was closed while steps ran")
                if ready():
                    return
                self._changed.wait(0.5)  # the session may be closed, a pool may be dead
            self.watchdog.check(self._waits_on)  # outside the lock: steps go on finishing
            self.reach.check(self.session.dfk.executors)
            meanwhile()

    def ran(self) -> set[tuple[str, str]]:
        """(plugin, name) of every step this run submitted."""
        with self._changed:
            return set(self._ran)

    def abandon(self) -> None:
        """After a failure or an interrupt: steps of this run that have not started never start,
        wherever they wait (q2pconf._supervise.abandon); thread-pool ones are also cancelled."""
        self.marker.abandon()
        with self._changed:
            futures = list(self._pending.values())
        closing.cancel_not_started(self.session.dfk, futures)

    def settle_history(self) -> None:
        """The run has ended: a step still unfinished gets the state its trace line gets
        (q2pconf._observe.history.unfinished_status), not `pending`."""
        with self._changed:
            unfinished = list(self._pending.items())
        for index, future in unfinished:
            if not future.done():  # else its callback gives its own state
                started, ended, _ = _times(future)
                self.history.finished(index, started, ended,
                                      STATES[unfinished_status(future)])

    def _waits_on(self, label: str) -> bool:
        """Whether a step of this run that has not finished was sent to executor `label`."""
        return self._running_on.get(label, 0) > 0


class SerialRun:
    """A pipeline run without Parsl: each step runs when it is called, in the caller's thread,
    and returns a completed future, so the body sees what a parallel run gives it. Every
    check of a parallel run is made: outputs=N, walltime, the note naming a failing step."""

    def __init__(self) -> None:
        self.records: list[StepRecord] = []

    def submit(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = Call(step, args, kwargs, None, -1)
        began = time.time()
        try:
            # the function itself, not its runner: in this thread a KeyboardInterrupt can be
            # the user's Ctrl-C, which must stop the run as itself
            with step_depth(steps_running() + 1):  # steps it calls are plain calls
                value = _within(step.walltime, step.func, nested.unwrap(args),
                                nested.unwrap(kwargs))
            error = None if step.outputs is None else _outputs_error(step, value)
            if error is not None:
                raise error
        except BaseException as failure:
            self.records.append(StepRecord(step.name, SERIAL_LABEL, began, time.time(), "failed"))
            _add_note(failure, f"q2pconf: in {call.where()}")
            raise
        self.records.append(StepRecord(step.name, SERIAL_LABEL, began, time.time(), "exec_done"))
        if step.outputs is None:
            return _completed(value)
        return tuple(_completed(item) for item in value)


_HOLDERS = (Future, dict, *nested.SEQUENCES)  # what may hold a future (q2pconf._base.nested)


def _inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The call numbers of the steps whose futures a call is given, as the trace writes them
    (most calls of a big fan-out are given plain values: those are told at once)."""
    if not kwargs and not any(isinstance(arg, _HOLDERS) for arg in args):
        return "-"
    return calls_text([found.call for found in nested.gather((args, kwargs))
                       if isinstance(found, StepFuture) and found.call >= 0])


def _within(walltime: float | None, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """func(*args, **kwargs), stopped after `walltime` seconds as Parsl stops it."""
    if walltime is None:
        return func(*args, **kwargs)
    from parsl.app.python import timeout  # Parsl's own: the same AppTimeout, raised the same way

    with shapes.time_limit(walltime, ".".join(shapes.naming(func)[:2]), remote=False):
        return timeout(func, walltime)(*args, **kwargs)  # a thread's warning if it runs late


def _completed(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _outputs_error(step: Step, value: Any) -> ValueError | None:
    """Why `value` is not what `@step(outputs=N)` promised, or None."""
    if isinstance(value, (tuple, list)) and len(value) == step.outputs:
        return None
    return ValueError(f"step {step.name} was declared with outputs={step.outputs} "
                      f"but returned {type(value).__name__} {_REPR.repr(value)}")


@dataclass(frozen=True)
class Call:
    """One submitted step call, kept only until it finished: described if it fails
    (formatting costs per step), and where its history entry is."""

    step: Step
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    label: str | None  # None: run serially
    index: int  # in the run's history (-1: a serial run's)

    def where(self) -> str:
        step = self.step
        on = "run serially" if self.label is None else f"on executor {self.label!r}"
        text = f"step {step.plugin}.{step.name}({_summary(self.args, self.kwargs)}) {on}"
        return text if step.walltime is None else f"{text} (walltime {step.walltime:g} s)"


def _own_thread_hint() -> str:
    """What to say when a pipeline called from a thread of its own waits while steps run in
    other threads: maybe a thread a step started, whose pipeline then waits for the workers
    that step holds (a step's own thread runs a pipeline inline; a thread it starts cannot be
    told from the program's other threads)."""
    if threading.current_thread() is threading.main_thread() or not steps_in_other_threads():
        return ""
    return (". If a step called this pipeline from a thread the step started itself, the "
            "pipeline's steps may wait for the workers that step holds: call the pipeline in "
            "the step's own thread (it then runs there, as run.serial does), or from the "
            "pipeline body")


def _times(future: Any) -> tuple[float | None, float | None, str]:
    record = getattr(future, "task_record", {})

    def seconds(key: str) -> float | None:
        value = record.get(key)
        return None if value is None else value.timestamp()

    return (seconds("try_time_launched"), seconds("try_time_returned"),
            getattr(record.get("status"), "name", "unknown"))


def _launched(session: sessions.Session) -> int:
    """Tasks the session's executors hold now (Parsl's count; they may still be queued)."""
    from parsl.dataflow.states import States

    return session.dfk.task_state_counts[States.launched]


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 40, 40, 4, 4


def _summary(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, Future):
            return "<future>"
        return _REPR.repr(value)

    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= 120 else text[:117] + "..."


def _add_note(error: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        error.add_note(note)
        return
    error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]
    if sys.excepthook is sys.__excepthook__:  # before 3.11 tracebacks do not show notes
        sys.excepthook = _show_notes


def _show_notes(kind: type[BaseException], error: BaseException, tb: Any) -> None:
    sys.__excepthook__(kind, error, tb)
    for note in getattr(error, "__notes__", ()):
        print(note, file=sys.stderr)
