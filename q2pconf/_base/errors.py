"""The error types q2pconf raises (a bad config; a step whose failure cannot travel), and the
warnings it logs."""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])


class ConfigError(ValueError):
    """A config file, or the environment that chooses one, is wrong.

    The message names the file, the key path, what is wrong and how to fix it::

        /home/me/qiime2_config.toml: parsl.executors[0].max_thread: unknown key.
          Fix: did you mean max_threads?
    """

    def __init__(self, file: object, key: str, problem: str, fix: str = "") -> None:
        self.file = "" if file is None else str(file)
        self.key = key
        self.problem = problem
        self.fix = fix
        where = ": ".join(part for part in (self.file, key) if part)
        text = f"{where}: {problem}" if where else problem
        super().__init__(f"{text}\n  Fix: {fix}" if fix else text)


def shallow(func: F) -> F:
    """For public entry points: a ConfigError leaves them without the frames of q2pconf's
    checker below them. The user sees their own lines, then the message naming the file, key
    and fix: not a dozen frames of validate, limits and contextlib."""
    def entry(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as error:
            raise error.with_traceback(None)  # the same error, its traceback from here

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(entry, name, getattr(func, name))
    entry.__wrapped__ = func  # type: ignore[attr-defined]
    return entry  # type: ignore[return-value]


class UnknownLabelError(ConfigError, KeyError):
    """A mapping names an executor label that the config in force does not have.

    Also a KeyError, which QIIME 2 raises here, so `except KeyError` in QIIME 2-style code
    still catches it; its message reads as a ConfigError's, not as a quoted key."""

    def __str__(self) -> str:
        return ValueError.__str__(self)


# QIIME 2 2024.10 and later label their thread pool "tpool" (and the HTEX "default").
QIIME2_THREAD_LABEL = "tpool"


class StepError(Exception):
    """A step raised an exception that cannot travel back from its worker as itself, or one
    that would end the program (SystemExit, KeyboardInterrupt), or returned a value that
    cannot be sent back from its worker. It carries what is needed to fix it, as text:

    - `step`: the step's name; `kind`: "raised" or "returned";
    - `type_name`: the exception's (or value's) type, as module.qualname;
    - `message`: the exception's message (or the value's repr), `trace`: the worker's
      traceback, formatted; `problem`: why the original could not be sent.
    """

    def __init__(self, step: str, kind: str, type_name: str, message: str, trace: str,
                 problem: str) -> None:
        super().__init__(step, kind, type_name, message, trace, problem)
        self.step, self.kind, self.type_name = step, kind, type_name
        self.message, self.trace, self.problem = message, trace, problem

    def __str__(self) -> str:
        if self.kind == "returned":
            return (f"step {self.step} returned {self.type_name} {self.message}, which cannot be "
                    f"sent back from its worker: {self.problem}\n  Fix: return plain data, or "
                    "objects whose class can be imported and rebuilt where the pipeline runs")
        return (f"step {self.step} raised {self.type_name}: {self.message}\n"
                f"  ({self.problem})\n{self.trace}".rstrip())


class ExecutorFailed(RuntimeError):
    """Steps wait on an executor that can never run them; the message says why, names each
    failed block's stderr file and shows its last lines."""

    def __init__(self, label: str, problem: str, blocks: str, fix: str) -> None:
        self.label = label
        text = f"q2pconf: executor {label!r} {problem}"
        super().__init__("\n".join(filter(None, (text, blocks, f"  Fix: {fix}"))))


def no_such_executor(file: object, key: str, label: str, labels: Iterable[str],
                     thread_pools: Iterable[str] = ()) -> UnknownLabelError:
    """The one message for a label that no executor of the config in force has.

    `thread_pools` are the labels of its thread pools: a mapping written for QIIME 2 2024.10's
    "tpool" is told which of them to use instead."""
    labels, pools = list(labels), list(thread_pools)
    fix = did_you_mean(label, labels) if labels else "define an executor with that label"
    if label == QIIME2_THREAD_LABEL and pools:
        fix = (f"QIIME 2 2024.10 and later call their thread pool 'tpool'; in this config the "
               f"thread pool is labelled {pools[0]!r}: use {pools[0]!r} instead")
    return UnknownLabelError(file, key, f"no executor is labelled {label!r}", fix)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'did you mean X?' for the closest choice, else a list of the valid ones."""
    options = sorted(set(choices))
    import difflib  # only when a message needs it

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]}?"
    if len(options) > 12:
        return f"use one of {', '.join(options[:12])}, ..."
    return f"use one of {', '.join(options)}" if options else "remove it"


def warn(message: str) -> None:
    """One line on the ``q2pconf`` logger: stderr unless the application routes logging."""
    import logging

    logging.getLogger("q2pconf").warning("q2pconf: warning: %s", message)


_WARNED: set[object] = set()
_WARNED_LOCK = threading.Lock()


def warn_once(message: str, key: object = None) -> None:
    """`warn`, but said once per process for each `key` (the message itself by default): each
    pipeline call finds and checks the config again, and three calls must not say the same
    thing three times. The one "say it once" rule of q2pconf: a step past its walltime is said
    once per step, a trace that cannot be written once per process."""
    key = message if key is None else key
    with _WARNED_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warn(message)


# Public errors print (in a traceback) and pickle under their public name, q2pconf.<Name>.
for _public in (ConfigError, UnknownLabelError, StepError, ExecutorFailed):
    _public.__module__ = "q2pconf"
