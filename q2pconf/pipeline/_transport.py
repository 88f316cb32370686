"""How a step travels to an HTEX worker: by reference whenever the worker can import it.

A step in an importable module is sent as (module, name): the worker imports it, as
multiprocessing does. A step in the running script (`__main__`) is sent as (script path,
name): the worker loads the script as a module under another name, so its
`if __name__ == "__main__":` block does not run, and the step finds its globals there. Only a
step neither can reach (defined inside a function, typed into `python -c` or a notebook) is
sent by value, with the part of its namespace it uses; so is a step of a script read from
standard input (`python - < script.py`: no file to load). A step of a script file that reads a
global the script's main block sets is warned about (q2pconf.pipeline._mainblock).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import Callable, Iterator
from types import CellType, CodeType, FunctionType, ModuleType
from typing import Any

from q2pconf.pipeline import _results as crossing, _shapes as shapes
from q2pconf._base.keywords import CODE_KEY, RUN_KEY, TRACE_KEY
from q2pconf._supervise.abandon import skip_if_abandoned
from q2pconf.pipeline._results import SCRIPT_MODULE
from q2pconf._observe.measure import measured

NO_GUARD = ("q2pconf: {path} runs a pipeline when it is imported, so an HTEX worker loading its "
            "steps would run it again; put the call under `if __name__ == \"__main__\":`")
_loading: list[str] = []  # scripts being loaded on this worker
UNSENDABLE = "it cannot be sent back from its worker as itself: "
_IN_STEP = threading.local()  # `depth`: steps this thread is running now
_BUSY: set[int] = set()  # the threads of this process running a step now
WORKER_VAR = shapes.WORKER_VAR  # in the environment of Parsl's HTEX workers
_WORKER_PID: int | None = None  # this process, once it ran a step as an HTEX worker


def inside_step() -> bool:
    """Whether this thread is running a step, and no pipeline body inside it: a step called
    there is a plain call, and a pipeline called there runs its steps in this thread
    (q2pconf.pipeline._decorators), in every mode."""
    return getattr(_IN_STEP, "depth", 0) > 0


@contextlib.contextmanager
def step_depth(depth: int) -> Iterator[None]:
    """This thread counts `depth` steps running while the block runs: a serial run's step
    (one more), or a pipeline body run inside a step (0: its step calls are the body's)."""
    before = getattr(_IN_STEP, "depth", 0)
    _IN_STEP.depth = depth
    try:
        yield
    finally:
        _IN_STEP.depth = before


def on_worker() -> bool:
    """Whether this process is an HTEX worker that has run a step: a pipeline called there,
    even from a thread of a step's own, runs as run.serial does (no Parsl inside a worker)."""
    return _WORKER_PID == os.getpid()


def steps_in_other_threads() -> bool:
    """Whether a thread other than this one is running a step in this process."""
    return bool(_BUSY - {threading.get_ident()})


def steps_running() -> int:
    """How many steps this thread is running, one inside another."""
    return getattr(_IN_STEP, "depth", 0)


class Runner:
    """The callable Parsl runs for one step."""

    def __init__(self, func: Callable[..., Any], owner: Any = None) -> None:
        self.func = func
        self.owner = owner  # the Step object users see under this name, when there is one
        self.__module__, self.__qualname__, self.__name__ = shapes.naming(func)
        # Parsl's AppBase reads an app's signature for defaults of its own keywords (inputs,
        # walltime...): it must see none, the step's parameters are the user's
        # (q2pconf.pipeline._shapes)
        self.__signature__ = inspect.Signature([
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(args, kwargs, remote=False)

    def call(self, args: tuple[Any, ...], kwargs: dict[str, Any], remote: bool) -> Any:
        """Run the step. `remote`: in a process that received it pickled, so what it returns
        or raises must be pickled back (see q2pconf.pipeline._results)."""
        kwargs.pop(CODE_KEY, None)
        skip_if_abandoned(kwargs.pop(RUN_KEY, None), remote)
        key = kwargs.pop(TRACE_KEY, None)
        walltime = kwargs.pop("walltime", None)  # Parsl's time limit: the user's is escaped
        kwargs = shapes.unescape(kwargs)
        with shapes.time_limit(walltime, f"{self.__module__}.{self.__qualname__}", remote):
            if key is None:
                return self._run(args, kwargs, remote)
            return measured(key, self._run, (args, kwargs, remote), {})

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any], remote: bool) -> Any:
        _IN_STEP.depth = getattr(_IN_STEP, "depth", 0) + 1
        _BUSY.add(threading.get_ident())
        try:
            result = self.func(*args, **kwargs)
        except Exception as error:
            problem = crossing.unsendable_error(error) if remote else None
            if problem is not None:
                raise crossing.raised(self.__qualname__, error, UNSENDABLE + problem) from None
            raise
        except BaseException as error:  # SystemExit, KeyboardInterrupt... from the step itself
            kind = type(error).__name__
            raise crossing.raised(self.__qualname__, error, crossing.ENDS.format(kind=kind)) \
                from (None if remote else error)  # a cause would cross too
        finally:
            _IN_STEP.depth -= 1
            if not _IN_STEP.depth:
                _BUSY.discard(threading.get_ident())
        return crossing.check_returned(self.__qualname__, result) if remote else result

    def code_digest(self) -> str:
        """What the step's result depends on besides its arguments (pipeline._fingerprint)."""
        from q2pconf.pipeline import _fingerprint as fingerprint

        if isinstance(self.func, FunctionType):
            return fingerprint.of(self.func)
        return fingerprint.of_definition(self.func)  # a builtin, partial or callable object

    def __reduce__(self) -> tuple[Any, ...]:
        """A pickled runner arrives as a Remote: it checks what it sends back."""
        if self.__module__ == "__main__":
            main = sys.modules["__main__"]
            path = script_file(main)
            if path and _lookup(main, self.__qualname__) is self.owner:
                # Objects of the script's classes come back pickled as SCRIPT_MODULE.Name:
                # here that module is the script itself.
                name = script_name(main)
                sys.modules.setdefault(name, main)
                # only for a script's steps sent to a worker
                from q2pconf.pipeline import _mainblock as mainblock

                mainblock.check(path, self.__qualname__, self.func)
                return (Remote, (_from_script, (path, self.__qualname__, name)))
        elif _lookup(sys.modules.get(self.__module__), self.__qualname__) is self.owner:
            main = sys.modules.get("__main__")
            path = script_file(main) if main is not None else None
            if path:  # the worker imports the module afresh: what the script set there is lost
                from q2pconf.pipeline import _mainblock as mainblock

                mainblock.check(path, f"{self.__module__}.{self.__qualname__}", self.func, main)
            return (Remote, (_from_module, (self.__module__, self.__qualname__)))
        return (Remote, (Runner, (_sendable(self.func),)))


def script_file(main: ModuleType) -> str | None:
    """The absolute path of the running script, or None when it has no file a worker can load
    (`python -c`, `python - < script.py`, whose `__file__` is "<stdin>", a notebook): its steps
    are then sent by value."""
    path = getattr(main, "__file__", None)
    if not path or (path.startswith("<") and path.endswith(">")):
        return None
    path = os.path.abspath(path)
    return path if os.path.isfile(path) else None


def script_name(main: ModuleType) -> str:
    """The running script's module name on a worker: SCRIPT_MODULE, inside the script's
    package when it runs as `python -m package.module` (so its relative imports work)."""
    spec = getattr(main, "__spec__", None)
    package = getattr(spec, "parent", "") if spec is not None else ""
    return f"{package}.{SCRIPT_MODULE}" if package else SCRIPT_MODULE


class Remote:
    """A step in the process it was sent to: a Runner whose results must travel back."""

    def __init__(self, load: Callable[..., Runner], args: tuple[Any, ...]) -> None:
        self.runner = load(*args)
        self.__name__ = self.runner.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        global _WORKER_PID
        if _WORKER_PID is None and WORKER_VAR in os.environ:  # set by Parsl's worker pool
            _WORKER_PID = os.getpid()  # not inherited by a program a step starts
        return self.runner.call(args, kwargs, remote=True)

    def __reduce__(self) -> tuple[Any, ...]:
        return self.runner.__reduce__()


class _ByValue:
    """A function sent with its namespace: the functions (and steps) of the same namespace it
    reaches, by value; modules by name; other globals as dill sends them. So a step typed into
    `python -c` or a notebook finds `time`, its helpers and its constants on the worker."""

    def __init__(self, func: FunctionType) -> None:
        self.func = func

    def __reduce__(self) -> tuple[Any, ...]:
        namespace = self.func.__globals__
        functions: dict[str, FunctionType] = {}
        values: dict[str, Any] = {}
        wrappers: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}
        todo = [self.func]
        while todo:
            for name in global_names(todo.pop().__code__):
                if name in functions or name in values or name not in namespace:
                    continue
                value = namespace[name]
                inner, wrapper = _unwrapped(value)
                if isinstance(inner, FunctionType) and inner.__globals__ is namespace:
                    functions[name] = inner
                    todo.append(inner)
                    if wrapper is not None:
                        wrappers[name] = wrapper
                elif isinstance(value, ModuleType):
                    values[name] = _ModuleByName(value.__name__)
                else:
                    values[name] = value
        return (_rebuild, (_parts(self.func), {n: _parts(f) for n, f in functions.items()},
                           values, wrappers))


def _unwrapped(value: Any) -> tuple[Any, tuple[Callable[..., Any], dict[str, Any]] | None]:
    """The function a step or pipeline wraps, and how to wrap it again on the worker (there,
    a step it calls is a plain call and a pipeline runs inline: q2pconf.pipeline._decorators,
    whose Step and Pipeline say how through `_sent_as`); any other value as itself, with None."""
    sent_as = getattr(type(value), "_sent_as", None)
    if sent_as is None or not callable(sent_as):
        return value, None
    func, wrap, options = sent_as(value)
    return func, (wrap, options)


def _sendable(func: Any) -> Any:
    """What pickles as `func` on a worker: an importable function, a builtin or a callable
    object as itself, a function only this process knows by value, a partial by its parts."""
    if isinstance(func, functools.partial):
        return _PartialByParts(func)
    if not isinstance(func, FunctionType):
        return func
    module = func.__module__
    if module != "__main__" and _lookup(sys.modules.get(module), func.__qualname__) is func:
        return func
    return _ByValue(func)


class _PartialByParts:
    def __init__(self, func: functools.partial[Any]) -> None:
        self.func = func

    def __reduce__(self) -> tuple[Any, ...]:
        part = self.func
        return (_partial, (_sendable(part.func), part.args, part.keywords))


def _partial(func: Any, args: tuple[Any, ...], keywords: dict[str, Any]) -> Any:
    return functools.partial(func, *args, **keywords)


class _ModuleByName:
    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (importlib.import_module, (self.name,))


def global_names(code: CodeType) -> set[str]:
    """Global names a code object (and the code nested in it) reads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= global_names(const)
    return names


def _parts(func: FunctionType) -> tuple[Any, ...]:
    import dill

    cells = tuple(cell.cell_contents for cell in func.__closure__ or ())
    return (func.__name__, dill.dumps(func.__code__), func.__defaults__, func.__kwdefaults__,
            cells)


def _rebuild(main: tuple[Any, ...], functions: dict[str, tuple[Any, ...]],
             values: dict[str, Any],
             wrappers: dict[str, tuple[Callable[..., Any], dict[str, Any]]]) -> FunctionType:
    import builtins

    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "__q2pconf_value__"}
    namespace.update(values)
    for name, parts in functions.items():
        func = _function(parts, namespace)
        wrap, options = wrappers.get(name, (None, {}))
        namespace[name] = func if wrap is None else wrap(func, **options)
    return _function(main, namespace)


def _function(parts: tuple[Any, ...], namespace: dict[str, Any]) -> FunctionType:
    import dill

    name, code, defaults, kwdefaults, cells = parts
    closure = tuple(CellType(value) for value in cells) or None
    func = FunctionType(dill.loads(code), namespace, name, defaults, closure)
    func.__kwdefaults__ = kwdefaults
    return func


def _lookup(module: ModuleType | None, qualname: str) -> Any:
    value: Any = module
    for part in qualname.split("."):
        if isinstance(value, type):  # a method: the class's own entry, never bound
            value = inspect.getattr_static(value, part, None)
            if isinstance(value, (classmethod, staticmethod)):
                value = value.__func__
        else:
            value = getattr(value, part, None)
    return value


def _runner_of(value: Any, where: str) -> Runner:
    runner = getattr(value, "runner", None)
    if not isinstance(runner, Runner):
        raise ImportError(f"q2pconf: {where} is not a step on this worker")
    return runner


def _from_module(module: str, qualname: str) -> Runner:
    return _runner_of(_lookup(importlib.import_module(module), qualname),
                      f"{module}.{qualname}")


def _from_script(path: str, qualname: str, name: str = SCRIPT_MODULE) -> Runner:
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != path:
        package = name.rpartition(".")[0]
        if package:  # `python -m package.module`: the package first, as Python imports it
            importlib.import_module(package)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"q2pconf: cannot load the script {path} on this worker")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if not package:
            sys.path.insert(0, os.path.dirname(path))  # as `python script.py` does
        _loading.append(path)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        finally:
            _loading.pop()
    return _runner_of(_lookup(module, qualname), f"{path}:{qualname}")


def refuse_while_loading() -> None:
    """Called by every pipeline: a worker loading a script must not run the script's pipeline."""
    if _loading:
        raise RuntimeError(NO_GUARD.format(path=_loading[-1]))
