"""The Parsl session: one per process, started lazily, always cleaned up.

A session owns one Parsl DataFlowKernel. It is created by the first pipeline call, reused by
later calls with the same config, and closed at interpreter exit, on SIGTERM/SIGHUP, and when
Ctrl-C interrupts a pipeline. Executors start the first time a step is sent to them, so a
pipeline that only uses threads never starts an HTEX interchange or its workers.
"""
from __future__ import annotations

import atexit
import contextvars
import glob
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from q2pconf import closing
from q2pconf.config import Settings, choose_executor, load
from q2pconf.validate import flat_mapping

# Parsl's first strategy tick starts HTEX blocks; its 5 s default makes the first result slow.
# A tick is cheap: providers cache their job status for their own polling interval.
SESSION_DEFAULTS = {"strategy_period": 0.2}


@dataclass(frozen=True)
class Choice:
    """What a `ParallelConfig` block asks for: a file, Settings, or a ready parsl.Config."""

    target: Any = None
    mapping: dict[str, str] | None = None


_CHOICE: contextvars.ContextVar[Choice | None] = contextvars.ContextVar("q2pconf_choice",
                                                                        default=None)


class ParallelConfig:
    """Run the pipelines called inside the block with this config.

    `config` is a path to a TOML file, a `q2pconf.Settings`, a `parsl.Config`, or None for the
    usual lookup. `mapping` ({"step": "label"} or QIIME 2's {"plugin": {"action": "label"}})
    adds to, and wins over, the file's `[parsl.executor_mapping]`::

        with q2pconf.ParallelConfig("cluster.toml", mapping={"classify": "htex"}):
            run(samples)
    """

    def __init__(self, config: Any = None, mapping: dict[str, Any] | None = None) -> None:
        self.choice = Choice(config, flat_mapping(mapping or {}, lambda value, key: value))
        self._tokens: list[contextvars.Token[Choice | None]] = []

    def __enter__(self) -> ParallelConfig:
        self._tokens.append(_CHOICE.set(self.choice))
        return self

    def __exit__(self, *exc: object) -> None:
        _CHOICE.reset(self._tokens.pop())


class Session:
    """One Parsl DataFlowKernel and the executors started in it so far."""

    def __init__(self, key: tuple[Any, ...], settings: Settings | None, parsl_config: Any,
                 mapping: dict[str, str], resume: bool) -> None:
        from parsl.dataflow.dflow import DataFlowKernel

        self.key = key
        self.settings = settings
        self.mapping = mapping
        self.resume = resume
        self._lock = threading.Lock()
        self._apps: dict[tuple[int, str], Any] = {}
        _quiet_parsl_logging()
        self.dfk = DataFlowKernel(parsl_config)
        self.labels = (tuple(settings.labels) if settings is not None
                       else tuple(label for label in self.dfk.executors
                                  if not label.startswith("_")))
        self.closed = False

    def label_for(self, name: str, plugin: str | None, hint: str | None) -> str:
        """The executor a step runs on (see `q2pconf.config.choose_executor`)."""
        return choose_executor(self.mapping, self.labels, name, plugin, hint)

    def app(self, runner: Any, label: str) -> Any:
        """The Parsl app running `runner` on `label`, starting that executor if needed."""
        key = (id(runner), label)
        app = self._apps.get(key)
        if app is None:
            from parsl.app.python import PythonApp

            with self._lock:
                self._start(label)
                app = self._apps.setdefault(key, PythonApp(
                    runner, data_flow_kernel=self.dfk, executors=[label], cache=self.resume))
        return app

    def _start(self, label: str) -> None:
        if label in self.dfk.executors:
            return
        if self.settings is None:
            from q2pconf.errors import no_such_executor

            raise no_such_executor("<parsl.Config>", "executors", label, self.labels)
        self.dfk.add_executors([self.settings.executor(label)])

    def close(self, wait: bool = True) -> None:
        """Stop every executor, within closing.CLOSE_BOUND seconds. With wait=False (a signal,
        Ctrl-C) running steps are abandoned; with wait=True running thread steps finish. Steps
        not yet started never start."""
        if self.closed:
            return
        self.closed = True
        dfk = self.dfk
        closing.bounded(lambda: closing.finish(dfk) if wait else closing.stop(dfk),
                        lambda: closing.kill(dfk))

    def check(self) -> None:
        """Fail the tasks of an executor whose interchange died (see closing)."""
        closing.check_interchanges(self.dfk)


_SESSION: Session | None = None
_SESSION_LOCK = threading.RLock()


def session(resume: bool = False) -> Session:
    """The process's session for the config chosen now; reused while the choice is the same."""
    global _SESSION
    choice = _CHOICE.get() or Choice()
    settings = _settings(choice.target)
    key = (_identity(choice.target, settings), tuple(sorted((choice.mapping or {}).items())),
           resume)
    with _SESSION_LOCK:
        if _SESSION is not None and not _SESSION.closed and _SESSION.key == key:
            return _SESSION
        close()
        _SESSION = _new_session(key, choice, settings, resume)
        _install_handlers()
        return _SESSION


def close(wait: bool = True) -> None:
    """Close the process's session, if any (the next pipeline call starts a new one)."""
    global _SESSION
    with _SESSION_LOCK:
        current, _SESSION = _SESSION, None
    if current is not None:
        current.close(wait)


def _new_session(key: tuple[Any, ...], choice: Choice, settings: Settings | None,
                 resume: bool) -> Session:
    if settings is None:  # a ready parsl.Config
        from q2pconf.build import follow_nested_futures

        config = follow_nested_futures(choice.target)
        return Session(key, None, config, dict(choice.mapping or {}), resume)
    defaults: dict[str, Any] = dict(SESSION_DEFAULTS)
    if resume and "memoizer" not in settings.plan.options:
        defaults["memoizer"] = _resuming_memoizer(settings)
    config = settings.parsl_config(labels=[], **defaults)
    mapping = {**settings.mapping, **(choice.mapping or {})}
    return Session(key, settings, config, mapping, resume)


def _settings(target: Any) -> Settings | None:
    if target is None or isinstance(target, (str, os.PathLike)):
        return load(target)
    if isinstance(target, Settings):
        return target
    if type(target).__name__ == "Config" and type(target).__module__.startswith("parsl"):
        return None
    raise TypeError("ParallelConfig takes a path, a q2pconf.Settings or a parsl.Config, "
                    f"not {type(target).__name__}")


def _identity(target: Any, settings: Settings | None) -> tuple[Any, ...]:
    """Equal for the same config file, unchanged, so sessions are reused only when safe."""
    if settings is None:
        return ("parsl.Config", id(target))
    if settings.path is None:
        return (settings.source, id(settings.plan) if settings.source == "explicit" else None)
    try:
        stat = settings.path.stat()
    except OSError:
        return (str(settings.path),)
    return (str(settings.path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _resuming_memoizer(settings: Settings) -> Any:
    """Parsl's own memoizer, checkpointing each task and reading all earlier checkpoints."""
    from parsl.dataflow.memoization import BasicMemoizer

    from q2pconf.paths import runinfo_root

    base = settings.plan.options.get("run_dir") or runinfo_root()
    # Parsl numbers runs inside run_dir (run_dir/000); q2pconf's default adds a per-process level.
    found = glob.glob(os.path.join(glob.escape(base), "*", "checkpoint"))
    found += glob.glob(os.path.join(glob.escape(base), "*", "*", "checkpoint"))
    return BasicMemoizer(checkpoint_mode="task_exit", checkpoint_files=sorted(found))


def _quiet_parsl_logging() -> None:
    """Parsl logs to parsl.log in its run_dir; keep it off the user's root handlers."""
    logging.getLogger("parsl").propagate = False


_CLOSER: closing.SignalCloser | None = None


def _install_handlers() -> None:
    """Close the session at exit and on SIGTERM/SIGHUP (when the program has not taken them;
    signals can be taken in the main thread only: a later call from there takes them)."""
    global _CLOSER
    if _CLOSER is None:
        atexit.register(close)
        _CLOSER = closing.SignalCloser(_close_on_signal)
    if threading.current_thread() is threading.main_thread():
        _CLOSER.install()


def _close_on_signal() -> None:
    """In the cleanup thread: the session as it is now, without the lock the interrupted
    main thread may hold."""
    current = _SESSION
    if current is not None:
        current.close(wait=False)


@contextmanager
def closed_on_interrupt() -> Iterator[None]:
    """Ctrl-C while waiting on a pipeline closes the session before the interrupt goes on."""
    try:
        yield
    except KeyboardInterrupt:
        close(wait=False)
        raise
