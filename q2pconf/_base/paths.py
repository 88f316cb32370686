"""Where QIIME 2 and q2pconf look for config files, and where q2pconf keeps run directories.

    >>> from q2pconf._base.paths import conda_config_path
    >>> str(conda_config_path("/opt/env"))
    '/opt/env/etc/qiime2_config.toml'
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_NAME = "qiime2_config.toml"
PRIVATE = 0o700  # directories q2pconf creates in the user's cache
UNKEPT: dict[str, str] = {}  # temporary run directory -> why the cache could not hold it


def user_config_path() -> Path:
    """`user_config_dir('qiime2')/qiime2_config.toml` (`~/.config/qiime2/` on Linux)."""
    return Path(_user_dir("XDG_CONFIG_HOME", ".config", "qiime2", "user_config_dir"),
                CONFIG_NAME)


def site_config_path() -> Path:
    """`site_config_dir('qiime2')/qiime2_config.toml` (`/etc/xdg/qiime2/` on Linux)."""
    # platformdirs, like appdirs, takes the first XDG_CONFIG_DIRS entry (an absolute one).
    if _xdg_plain():
        entries = os.environ.get("XDG_CONFIG_DIRS", "").split(os.pathsep)
        return Path(next(filter(_absolute, entries), "/etc/xdg"), "qiime2", CONFIG_NAME)
    from platformdirs import site_config_dir

    return Path(site_config_dir("qiime2"), CONFIG_NAME)


def user_cache_dir(app: str) -> str:
    """`platformdirs.user_cache_dir(app)` (`~/.cache/APP` on Linux)."""
    return _user_dir("XDG_CACHE_HOME", ".cache", app, "user_cache_dir")


def conda_config_path(prefix: str) -> Path:
    """The config inside a conda environment: `PREFIX/etc/qiime2_config.toml`."""
    return Path(prefix, "etc", CONFIG_NAME)


def runinfo_root() -> str:
    """Where q2pconf's default run directories go: the user's cache."""
    return str(Path(user_cache_dir("q2pconf"), "runinfo"))


# platformdirs costs ~5 ms to import (it brings tempfile, shutil, random...), a sixth of what
# `q2pconf info` may add to the interpreter's start. On Linux, q2pconf works the XDG paths out
# itself, as the XDG Base Directory Specification says: a variable (or an entry of a list) that
# is not an absolute path is ignored. platformdirs does so only since a 4.x release (its
# PR 540, September 2026): 3.x, which pyproject.toml admits, took `XDG_CONFIG_HOME=cfg` as relative
# to wherever the program started; a relative HOME counts as unset, as in platformdirs 4.
# Other systems (and Android) are platformdirs' to decide.
def _xdg_plain() -> bool:
    """Linux, and not Android (platformdirs has other rules there)."""
    return (sys.platform == "linux" and not hasattr(sys, "getandroidapilevel")
            and "ANDROID_DATA" not in os.environ)


def _absolute(entry: str) -> bool:
    return entry.startswith("/")


def _home() -> str | None:
    """$HOME if it is absolute, else the user's home in the password database (what
    platformdirs 4 does: a relative HOME would put the paths wherever the program started);
    None if neither is absolute."""
    home = os.environ.get("HOME", "")
    if _absolute(home):
        return home
    import pwd

    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # a uid without an entry (a container's): platformdirs decides
        return None
    return home if _absolute(home) else None


def _user_dir(variable: str, default: str, app: str, name: str) -> str:
    """`$variable/app`, else `~/default/app`, as `platformdirs.<name>(app)` gives them."""
    value = os.environ.get(variable, "")
    home = _home() if _xdg_plain() and not _absolute(value) else None
    if _xdg_plain() and (_absolute(value) or home is not None):
        return os.path.join(value if _absolute(value) else os.path.join(home, default), app)
    import platformdirs

    return str(getattr(platformdirs, name)(app))


def make_private_dirs(path: str) -> None:
    """`os.makedirs`, but each directory created here is 0700 exactly (the umask can only
    take bits away from mkdir's mode, and 000 takes none; a racing creator's is kept)."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            continue
        os.chmod(directory, PRIVATE)


# A run directory that cannot be made: the one message of `q2pconf check` and of the run.
CANNOT_CREATE = "cannot create {} ({})"
CANNOT_CREATE_FIX = "set run_dir to a directory you can write"


def cannot_create(path: str) -> tuple[str, str] | None:
    """(the directory `make_private_dirs(path)` would fail on, why) when the nearest existing
    directory of `path` cannot be written (no permission, a read-only mount); None when it can,
    or when part of the path is a file (the caller's to say). Creates nothing."""
    import errno

    first = path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path or os.path.lexists(path):
            return None
        first, path = path, parent
    if os.access(path, os.W_OK | os.X_OK):
        return None
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return first, os.strerror(errno.EROFS if read_only else errno.EACCES)


def file_stamp(path: str) -> list[int]:
    """[mtime_ns, size] of a file, [-1, -1] when it cannot be read: what a cache built from
    the file is keyed by (q2pconf._catalog.accepted, q2pconf._parsl.typecache)."""
    try:
        info = os.stat(path)
    except OSError:
        return [-1, -1]
    return [info.st_mtime_ns, info.st_size]


def replace_file(path: str, data: bytes) -> None:
    """Put `data` at `path` whole or not at all: written to a private temporary file beside
    it, then renamed into place (a reader never sees half a file). Raises OSError."""
    import tempfile

    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def temporary_run_dir(reason: str) -> str:
    """A run directory for Parsl when the cache cannot hold one, removed at exit: runs still
    work, but keep no trace (`reason` goes into the one warning `q2pconf._observe.trace` gives)."""
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="q2pconf-run-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    UNKEPT[directory] = reason
    return directory


def unkept_reason(run_dir: str) -> str | None:
    """Why `run_dir` (inside a temporary run directory) keeps no trace; None if it can."""
    for directory, reason in UNKEPT.items():
        if inside(run_dir, directory):
            return reason
    return None


def inside(path: str, top: str) -> bool:
    """`path` is `top` or below it, as strings (/usr2 is not inside /usr); callers make both
    absolute (or real) first."""
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)
