"""Where a run writes: Parsl's run directory, created private, and its log kept quiet on a
full disk.

- Directories q2pconf creates for a run (`~/.cache` itself if missing, `q2pconf/runinfo`, the
  run's own directory) are 0700 whatever the umask: Parsl writes job scripts there, and a
  script another user can edit before it runs is their code running as you. Parsl's numbered
  directory inside (`000/`) is made 0700 too, for a `run_dir` that already existed.
- q2pconf's default run directory (in the user's cache) that cannot be created or has no room
  (a read-only or full cache): the run goes on in a temporary directory, removed at exit,
  with one warning naming the cache and saying that no trace of the run is kept.
- A run directory the config sets that cannot be created is one ConfigError naming the file,
  the key and the fix.
- Parsl's log file on a disk that fills up during the run: logging would print a
  "--- Logging error ---" traceback for every record (hundreds of thousands of lines). The
  first failure is one warning; Parsl's file logging stops for that run; results are
  unaffected.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
from typing import Any

from q2pconf._base.errors import ConfigError, warn, warn_once
from q2pconf._base.paths import (CANNOT_CREATE, CANNOT_CREATE_FIX, PRIVATE, inside,
                                 make_private_dirs, temporary_run_dir)

MIN_FREE = 1 << 20  # bytes: less than this and Parsl's start-up log may not fit


def prepare(config: Any, config_file: str | None) -> None:
    """Create a parsl.Config's run_dir and its missing parents, private.

    `config_file` names the file that set run_dir (a ConfigError names it when that fails),
    or None for q2pconf's default in the cache, which falls back to a temporary directory."""
    try:
        make_private_dirs(config.run_dir)
        if not _room(config.run_dir):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), config.run_dir)
    except OSError as error:
        reason = error.strerror or str(error)
        if config_file is None:
            _fall_back(config, reason)
            return
        failed = error.filename or config.run_dir
        raise ConfigError(config_file, "parsl.run_dir", CANNOT_CREATE.format(failed, reason),
                          CANNOT_CREATE_FIX) from None


def _fall_back(config: Any, reason: str) -> None:
    """Run in a temporary directory instead of the cache, saying so once."""
    wanted = config.run_dir
    config.run_dir = temporary_run_dir(reason)
    warn_once(f"cannot write the run directory {wanted} ({reason}): no trace of this run is "
              "kept, and Parsl's log goes to a temporary directory removed at exit (results "
              "are not affected). Fix: point XDG_CACHE_HOME, or run_dir under [parsl], at a "
              "writable directory with room")


def _room(directory: str) -> bool:
    try:
        info = os.statvfs(directory)
    except OSError:
        return True  # cannot tell: let Parsl try
    return info.f_bavail * info.f_frsize >= MIN_FREE


def make_private(directory: str) -> None:
    """Take group and other access away from a directory Parsl just created for this run."""
    try:
        info = os.lstat(directory)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            os.chmod(directory, PRIVATE)
    except OSError:
        pass  # gone already; Parsl will say so


def quiet_log_errors(run_dir: str) -> None:
    """Parsl's file log handlers for `run_dir`: a write that fails is one warning, then
    the handler is removed, instead of a traceback on stderr for every later record."""
    for name in ("parsl", "concurrent.futures"):
        for handler in logging.getLogger(name).handlers:
            path = getattr(handler, "baseFilename", "")
            if path and inside(os.path.abspath(path), os.path.abspath(run_dir)):
                handler.handleError = _on_error(handler, run_dir)  # type: ignore[method-assign]


def _on_error(handler: Any, run_dir: str) -> Any:
    def handle_error(record: logging.LogRecord) -> None:
        import sys

        error = sys.exc_info()[1]
        for name in ("parsl", "concurrent.futures"):
            logging.getLogger(name).removeHandler(handler)
        try:
            handler.close()
        except OSError:
            pass  # flushing what is buffered fails the same way
        cannot_write(run_dir, getattr(error, "strerror", None) or str(error or "unknown error"))
    return handle_error


_STOPPED: set[str] = set()  # run directories already said to be unwritable


def cannot_write(run_dir: str, reason: str) -> None:
    """One warning per run directory, whichever of its writers fails first (Parsl's log, the
    run's trace): both stop writing there, and the run goes on."""
    if run_dir in _STOPPED:
        return
    _STOPPED.add(run_dir)
    warn(f"cannot write in the run directory {run_dir} ({reason}): Parsl's log and this run's "
         "trace stop here (results are not affected). Fix: free space there, or set run_dir "
         "in the config's [parsl] table (or XDG_CACHE_HOME) to a file system with room")


def guard_checkpoints(dfk: Any) -> None:
    """A checkpoint write that fails (a full disk) is one warning, and checkpointing stops for
    the run; the step keeps its result. Unguarded, Parsl raises inside the step's completion:
    the step never completes and the pipeline waits for ever, with a traceback per step.

    The checkpoint file is cut back to its last whole record, so a later `resume=True` run
    can still read it. Parsl 2024.12 writes checkpoints in the DataFlowKernel; later Parsl in
    its memoizer."""
    memoizer = getattr(dfk, "memoizer", None)
    owner, name = ((memoizer, "_checkpoint_these_tasks")
                   if hasattr(memoizer, "_checkpoint_these_tasks") else (dfk, "checkpoint"))
    write = getattr(owner, name, None)
    if write is None:
        return
    tasks = os.path.join(dfk.run_dir, "checkpoint", "tasks.pkl")

    def guarded(*args: Any, **kwargs: Any) -> Any:
        size = _size(tasks)
        try:
            return write(*args, **kwargs)
        except OSError as error:
            _cut(tasks, size)
            owner.checkpoint_mode = None
            warn_once(f"cannot write the checkpoint {tasks} ({error.strerror or error}); "
                      "checkpointing is off for the rest of this run (results are not "
                      "affected; steps finished from now on will run again on resume). Fix: "
                      "free space there, or set run_dir in the config's [parsl] table")
            return None

    setattr(owner, name, guarded)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _cut(path: str, size: int) -> None:
    """Drop a partly written last record (truncating needs no free space)."""
    try:
        if size:
            os.truncate(path, size)
        else:
            os.unlink(path)
    except OSError:
        pass
