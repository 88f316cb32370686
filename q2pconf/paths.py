"""Where QIIME 2 and q2pconf look for config files, and where q2pconf keeps run directories.

    >>> from q2pconf.paths import conda_config_path
    >>> str(conda_config_path("/opt/env"))
    '/opt/env/etc/qiime2_config.toml'
"""
from __future__ import annotations

import os
from pathlib import Path

CONFIG_NAME = "qiime2_config.toml"
PRIVATE = 0o700  # directories q2pconf creates in the user's cache
UNKEPT: dict[str, str] = {}  # temporary run directory -> why the cache could not hold it


def user_config_path() -> Path:
    """`user_config_dir('qiime2')/qiime2_config.toml` (`~/.config/qiime2/` on Linux)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("qiime2"), CONFIG_NAME)


def site_config_path() -> Path:
    """`site_config_dir('qiime2')/qiime2_config.toml` (`/etc/xdg/qiime2/` on Linux)."""
    # platformdirs, like appdirs, takes the first XDG_CONFIG_DIRS entry.
    from platformdirs import site_config_dir

    return Path(site_config_dir("qiime2"), CONFIG_NAME)


def conda_config_path(prefix: str) -> Path:
    """The config inside a conda environment: `PREFIX/etc/qiime2_config.toml`."""
    return Path(prefix, "etc", CONFIG_NAME)


def runinfo_root() -> str:
    """Where q2pconf's default run directories go: the user's cache."""
    from platformdirs import user_cache_dir

    return str(Path(user_cache_dir("q2pconf"), "runinfo"))


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


def temporary_run_dir(reason: str) -> str:
    """A run directory for Parsl when the cache cannot hold one, removed at exit: runs still
    work, but keep no trace (`reason` goes into the one warning `q2pconf.trace` gives)."""
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
