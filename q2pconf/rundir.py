"""Where a run writes: Parsl's run directory, created private, and its log kept quiet on a
full disk.

- Directories q2pconf creates for a run (`~/.cache` itself if missing, `q2pconf/runinfo`, the
  run's own directory) are 0700 whatever the umask: Parsl writes job scripts there, and a
  script another user can edit before it runs is their code running as you. Parsl's numbered
  directory inside (`000/`) is made 0700 too, for a `run_dir` that already existed.
- A run directory that cannot be created is one ConfigError naming it and the fix.
- Parsl's log file on a full (or vanishing) disk: logging would print a "--- Logging error ---"
  traceback for every record (hundreds of thousands of lines). The first failure is one
  warning; Parsl's file logging stops for that run; results are unaffected.
"""
from __future__ import annotations

import logging
import os
import stat
from typing import Any

from q2pconf.errors import ConfigError, warn_once
from q2pconf.paths import PRIVATE, make_private_dirs

MIN_FREE = 1 << 20  # bytes: less than this and Parsl's start-up log may not fit


def prepare(config: Any, config_file: str | None) -> None:
    """Create a parsl.Config's run_dir and its missing parents, private (a ConfigError if
    that fails), and turn Parsl's file log off when its disk has no room for one.

    `config_file` names the file that set run_dir, or None when it is q2pconf's default."""
    _create(config.run_dir, config_file)
    if config.initialize_logging is True and not _room(config.run_dir):
        # Parsl logs a few dozen records while it starts, before quiet_log_errors can act
        config.initialize_logging = False
        warn_once(f"the disk holding {config.run_dir} is full: Parsl's file log is off for "
                  "this run (results are not affected). Fix: free space there, or set "
                  "run_dir in the config's [parsl] table (or XDG_CACHE_HOME) to a file system "
                  "with room")


def _room(directory: str) -> bool:
    try:
        info = os.statvfs(directory)
    except OSError:
        return True  # cannot tell: let Parsl try
    return info.f_bavail * info.f_frsize >= MIN_FREE


def _create(run_dir: str, config_file: str | None) -> None:
    try:
        make_private_dirs(run_dir)
    except OSError as error:
        reason = error.strerror or str(error)
        failed = error.filename or run_dir
        if config_file is None:
            raise ConfigError(failed, "", f"cannot create the run directory {run_dir} "
                              f"({reason})", "make that directory writable, or set run_dir "
                              "in the config's [parsl] table (or XDG_CACHE_HOME) to a "
                              "directory you can write") from None
        raise ConfigError(config_file, "parsl.run_dir", f"cannot create {failed} ({reason})",
                          "set run_dir to a directory you can write") from None


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
            if path and _inside(path, run_dir):
                handler.handleError = _on_error(handler)  # type: ignore[method-assign]


def _on_error(handler: Any) -> Any:
    def handle_error(record: logging.LogRecord) -> None:
        import sys

        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or error or "unknown error"
        for name in ("parsl", "concurrent.futures"):
            logging.getLogger(name).removeHandler(handler)
        try:
            handler.close()
        except OSError:
            pass  # flushing what is buffered fails the same way
        warn_once(f"cannot write Parsl's log {handler.baseFilename} ({reason}); Parsl's file "
                  "logging is off for the rest of this run (results are not affected). Fix: "
                  "free space there, or set run_dir in the config's [parsl] table (or "
                  "XDG_CACHE_HOME) to a file system with room")
    return handle_error


def _inside(path: str, top: str) -> bool:
    top = os.path.abspath(top).rstrip(os.sep) + os.sep
    return os.path.abspath(path).startswith(top)
