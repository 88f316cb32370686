"""What a step may be, and how its arguments and time limit reach it untouched.

Any callable can be a step: a function, a method (a step binds `self` as a function does, and
works under `@classmethod` / `@staticmethod` in either order), a builtin such as `math.sqrt`,
a `functools.partial`, a callable object. A generator function, an `async def` function and an
async generator cannot: their result is an object that runs later, never sent back from a
worker nor waited on, so they are refused when decorated.

A step's arguments are the user's whatever their names. Parsl reads some keywords of an app's
call itself (`inputs`, `outputs`, `stdout`, `stderr`, `walltime`,
`parsl_resource_specification`) and q2pconf adds its own (`_q2pconf_...`): a user's keyword of
either kind travels under an escaped name (`escape`) and gets its name back just before the
step runs (`unescape`).

Imported on workers before every step: only the standard library.
"""
from __future__ import annotations

import functools
import inspect
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from q2pconf._base.keywords import OWN_PREFIX

# Keywords Parsl's PythonApp and DataFlowKernel read from an app's call (parsl/app/app.py,
# parsl/app/python.py, parsl/dataflow/dflow.py: staging, memo keys, resource specifications).
PARSL_KEYWORDS = frozenset({"inputs", "outputs", "stdout", "stderr", "walltime",
                            "parsl_resource_specification"})
ESCAPED = "_q2pconf_kw_"  # a user's keyword Parsl or q2pconf would take, under this prefix
WORKER_VAR = "PARSL_WORKER_RANK"  # in the environment of Parsl's HTEX workers


def escape(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The user's keywords, none of them one Parsl or q2pconf reads."""
    return {(ESCAPED + name if name in PARSL_KEYWORDS or name.startswith(OWN_PREFIX) else name):
            value for name, value in kwargs.items()}


def unescape(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`escape` undone (q2pconf's own keywords must be gone by now)."""
    return {(name[len(ESCAPED):] if name.startswith(ESCAPED) else name): value
            for name, value in kwargs.items()}


def naming(func: Any) -> tuple[str, str, str]:
    """(module, qualified name, name) a step is known by in traces and messages: a function's
    own; `partial(f)` for a functools.partial; a callable object's class."""
    if isinstance(func, functools.partial):
        module, qualname, name = naming(func.func)
        return module, f"partial({qualname})", f"partial({name})"
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):  # a callable object: its class
        func = type(func)
        name = func.__name__
    module = getattr(func, "__module__", None) or getattr(type(func), "__module__", "")
    return module, getattr(func, "__qualname__", name), name


def unwrap_binding(func: Any) -> tuple[Any, str]:
    """(the callable, how a step made of it binds: "instance", "class" or "static")."""
    if isinstance(func, classmethod):
        return func.__func__, "class"
    if isinstance(func, staticmethod):
        return func.__func__, "static"
    return func, "instance" if inspect.isfunction(func) else "static"


def refuse_unrunnable(func: Any) -> None:
    """A TypeError for a callable whose result runs later (a generator, a coroutine)."""
    module, qualname, _ = naming(func)
    where = f"{module}.{qualname}"
    if inspect.isasyncgenfunction(func):
        kind, fix = "an async generator", "collect its items: `return asyncio.run(...)` of a " \
            "coroutine gathering them into a list"
    elif inspect.iscoroutinefunction(func):
        kind, fix = "an `async def` function", "make the step a plain `def` that runs it: " \
            "`return asyncio.run(coroutine(...))`"
    elif inspect.isgeneratorfunction(func):
        kind, fix = "a generator function", "return a list instead: `return list(...)`"
    else:
        return
    raise TypeError(f"q2pconf: @step cannot make a step of {where}: it is {kind}, whose "
                    f"result runs only later (it would never run on a worker); {fix}")


@contextmanager
def time_limit(walltime: float | None, name: str, remote: bool) -> Iterator[None]:
    """Around one run of a step with a walltime. In a worker process's main thread (HTEX),
    at the walltime the processes the step started are killed and AppTimeout is raised
    there, even in a sleep or a wait for a subprocess. In a thread (thread pool), where
    nothing can be killed, a step running past its walltime is reported once on stderr."""
    if walltime is None:
        yield
    elif remote and _can_signal():
        with _killing_at(walltime):
            yield
    else:
        timer = threading.Timer(walltime, _warn_late, (name, walltime))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def _can_signal() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def _killing_at(walltime: float) -> Iterator[None]:
    """SIGALRM at the walltime (a little before Parsl's own timer, which starts earlier and
    can only raise once the step returns to Python): the step's new child processes and
    theirs are killed, then AppTimeout is raised in the step."""
    before = set(_children(os.getpid()))

    def expire(signum: int, frame: Any) -> None:
        from parsl.app.errors import AppTimeout

        _kill_tree([p for p in _children(os.getpid()) if p not in before])
        raise AppTimeout(f"q2pconf: the step ran past its walltime of {walltime:g} s; the "
                         "processes it started were killed")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(walltime - min(0.05, walltime / 20), 0.001))
    try:
        yield
    except BaseException as error:
        # Parsl's own timer got there first (on a loaded machine our alarm's handler can run
        # after it): its AppTimeout passes here, and the step's processes end all the same
        if type(error).__name__ == "AppTimeout":
            _kill_tree([p for p in _children(os.getpid()) if p not in before])
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _children(pid: int) -> list[int]:
    """Child processes of `pid`, started by any of its threads: /proc lists each thread's
    own (Linux /proc; elsewhere none are known)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as listing:
                found += [int(part) for part in listing.read().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def _kill_tree(pids: list[int]) -> None:
    """SIGKILL `pids` and their descendants, each stopped first so none forks away."""
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            continue
        found.append(pid)
        todo += _children(pid)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _warn_late(name: str, walltime: float) -> None:
    from q2pconf._base.errors import warn_once

    warn_once(f"step {name} runs past its walltime of {walltime:g} s in a thread (a thread "
              "executor, or a serial run). A thread cannot be stopped while it sleeps, waits "
              "for a subprocess or runs C code: it raises AppTimeout only when it returns to "
              f"Python, and its subprocesses run on. {_late_fix()}", key=("walltime", name))


def _late_fix() -> str:
    if WORKER_VAR in os.environ:  # a pipeline called inside an HTEX step runs there, inline
        return ("It runs inside an HTEX step, in a pipeline called there: give that step a "
                "walltime, which ends its processes at the walltime.")
    return "Send the step to an HTEX executor to end it at its walltime."


def unsendable(func: Any, where: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               error: BaseException) -> BaseException:
    """Parsl's SerializationError ("Failed to serialize objects for an invocation of function
    value", no word of which object) as a TypeError naming the argument that cannot be sent
    to a worker process and what to do: `error` itself when every argument pickles."""
    from parsl.serialize import serialize

    try:
        named = list(inspect.signature(func).bind(*args, **kwargs).arguments.items())
    except (TypeError, ValueError):  # no signature, or it does not fit: by position
        named = [(f"argument {n + 1}", value) for n, value in enumerate(args)]
        named += list(kwargs.items())
    for name, value in named:
        try:
            serialize(value)
        except Exception as why:  # what pickle, then dill, said about this one
            module, qualname, _ = naming(func)
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            return TypeError(
                f"q2pconf: step {module}.{qualname} cannot be sent to {where}: its argument "
                f"`{name}` (a {kind}) cannot be pickled ({type(why).__name__}: {why}). An "
                "HTEX runs a step in another process, which receives its arguments (a "
                "method's instance too) pickled: make that object picklable (its class can "
                "define __getstate__ / __reduce__), or send the step to a thread executor "
                "(@step(executor=...) or the config's executor_mapping)")
    return error
